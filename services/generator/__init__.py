"""The generator service: batched K-sample generation over HTTP (OpenAI and TGI APIs), hot checkpoint
reload, and a TGI backend. Start it with ``python -m services.generator --model PATH_OR_ID``."""
