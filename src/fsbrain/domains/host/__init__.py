"""Host security: brute-force detection, security baseline audit, trojan and webshell scanning."""
