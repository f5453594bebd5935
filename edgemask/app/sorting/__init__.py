"""``--sort-into``: one sort job, an output folder written by one writer (:mod:`.manifest`), crops cut by
a pure function (:mod:`.crops`) that every engine calls, and the engines: the local frame loop's sink
(:mod:`.local`)."""
