"""The upstream side: where to send (resolver), what to send (outgoing), and how.

transport (the `Transport` interface and the one upstream error tree), client (the proxy's
own HTTP/1.1 `UpstreamClient`, one implementation of it), resolver (the static
`upstream_url` or the watchdog's ready pod), outgoing (headers and body sent upstream).
"""
