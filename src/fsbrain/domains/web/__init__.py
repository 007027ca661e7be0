"""Web security: request parsing, a CRS-compatible SecLang rule engine and fsbrain's own web rules.

Rules half (this package's stable API)::

    from fsbrain.domains.web import HttpRequest, WebRuleEngine
    engine = WebRuleEngine.default(paranoia=1)          # fsbrain's own rules
    engine = WebRuleEngine.from_crs("/usr/share/modsecurity-crs", paranoia=2)   # OWASP CRS
    verdict = engine.inspect(HttpRequest.from_dict({"method": "GET", "uri": "/?q=1' or '1'='1"}))
    verdict.blocked, verdict.score, verdict.labels, verdict.reasons, verdict.matched, verdict.limits_hit
"""

from fsbrain.domains.web.request import (
           HttpRequest,
           ParsedBody,
           RequestLimits,
           UploadedFile,
           parse_raw_request,
)
from fsbrain.domains.web.seclang.engine import MatchedRule, RuleVerdict, WebRuleEngine

__all__ = ["HttpRequest", "MatchedRule", "ParsedBody", "RequestLimits", "RuleVerdict", "UploadedFile",
           "WebRuleEngine", "parse_raw_request"]
