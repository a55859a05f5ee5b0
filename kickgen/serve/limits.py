"""How long and how much a connection to ``kickgen serve`` may take: the bounds that the command's
flags default to (:mod:`kickgen.serve.cli`) and that the uvicorn protocol enforces
(:mod:`kickgen.serve.server`). Plain numbers, so the CLI reads them without the serve extra."""

HEAD_TIMEOUT_S = 10.0  # a connection's request line and headers must arrive within this
MAX_CONNECTIONS = 256  # connections served at once (well under the usual limit of 1024 open files)
LINGER_S = 30.0  # a closing connection discards the client's bytes for at most this long ...
LINGER_IDLE_S = 5.0  # ... this long without a byte (nginx's lingering_time and lingering_timeout)
LINGER_BYTES = 128 * 2**20  # ... and this many bytes (a 60 MB upload's refusal reaches its client)
SEND_TIMEOUT_S = 60.0  # an answer the client stops reading is dropped after this long
