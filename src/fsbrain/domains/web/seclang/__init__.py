"""SecLang (ModSecurity rule language) as used by OWASP CRS v4: parser, operators, engine."""

from fsbrain.domains.web.seclang.parser import RuleSet, parse_files, parse_text

__all__ = ["RuleSet", "parse_files", "parse_text"]
