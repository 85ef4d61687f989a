"""The answer cache: key (what makes two requests the same, and whether to cache),
entry (one stored answer and its file format), db (files on disk plus a shared SQLite
index), store (`CacheStore`: the in-memory LRU index and hot bodies over the db).
"""
