from tests.pretrip.conftest import live_services  # noqa: F401  (the real container on a demo DB)
