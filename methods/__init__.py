"""Label-noise methods on plain arrays (numpy / torch / faiss / sklearn).

No module here imports fiftyone: each takes arrays and returns arrays, so it
can be tested and benchmarked without a database. Heavy libraries are
imported inside functions so that loading the plugin stays fast.
"""
