"""API routers, one module per resource. Each module defines ``router: fastapi.APIRouter``.

Domain packs add their routers to :data:`ROUTER_MODULES`; ``fsbrain.api.app`` includes every one present.
"""

ROUTER_MODULES = [
    "fsbrain.api.routers.health",
    "fsbrain.api.routers.decisions",
    "fsbrain.api.routers.lists",
    "fsbrain.api.routers.policies",
    "fsbrain.api.routers.alerts",
    "fsbrain.api.routers.web",
    "fsbrain.api.routers.host",
    "fsbrain.api.routers.flow",
]
