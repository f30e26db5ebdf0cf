"""Run the composed panel with uvicorn, the way ``koco serve`` runs kodosumi's."""

import json
import os
from urllib.parse import urlparse

import uvicorn
from kodosumi.config import Settings
from kodosumi.log import LOG_FORMAT


def run(settings: Settings) -> None:
    server = urlparse(settings.APP_SERVER)
    if server.hostname is None or server.port is None:
        raise ValueError(f"the panel address {settings.APP_SERVER} needs a host and a port")
    # kodosumi's create_app reads its settings back from these variables
    for key, value in settings.model_dump().items():
        if value is not None:
            os.environ[f"iKODO_{key}"] = json.dumps(value)
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": LOG_FORMAT}},
        "handlers": {"default": {"formatter": "default", "class": "logging.StreamHandler",
                                 "stream": "ext://sys.stdout"}},
        "loggers": {"": {"handlers": ["default"], "level": settings.UVICORN_LEVEL}},
    }
    uvicorn.run(
        "kodosumi_timer.panel.app:create_app", factory=True, host=server.hostname,
        port=server.port, log_config=log_config, headers=[("server", "kodosumi service")],
        ssl_keyfile=settings.SSL_KEYFILE, ssl_certfile=settings.SSL_CERTFILE,
        ssl_keyfile_password=settings.SSL_KEYFILE_PASSWORD,
    )
