"""The seam's server section: moto's WSGI app, served by our host process.
"""
from __future__ import annotations

import os
from typing import Any




def make_server(host: str, port: int) -> Any:
    """moto's WSGI app on a threaded werkzeug server (as ThreadedMotoServer builds it), not yet serving.

    MOTO_PORT is set to the bound port: moto's Step Functions calls Lambda at localhost:$MOTO_PORT.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server as make_werkzeug_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_werkzeug_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    return server
