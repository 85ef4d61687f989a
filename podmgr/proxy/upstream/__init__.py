"""The upstream side: where to send (resolver), what to send (outgoing), and how.

transport (the `Transport` interface and the one upstream error tree), client (the proxy's
own HTTP/1.1 `UpstreamClient`, the default implementation of it), aiohttp_transport (the
same interface on aiohttp, `upstream_client: aiohttp`), resolver (the watchdog's ready
pod), kinds (pod or OpenAI-compatible server: where each sends), router (the ordered
upstreams and their cool-downs), outgoing (headers and body sent upstream).
"""
