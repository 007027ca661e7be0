"""Risk-label taxonomy shared by every pillar, with Chinese and English names.

Domain packs extend it with :func:`register_label`.

>>> get_label("multi_lending").zh
'多头借贷'
"""

from __future__ import annotations

from dataclasses import dataclass

from fsbrain.core.errors import InputError


@dataclass(frozen=True, slots=True)
class RiskLabel:
    """One risk label.

    Args:
        id: stable identifier used in decisions, alerts and rules (snake_case).
        en: English name.
        zh: Chinese name.
        pillar: ``risk``, ``regtech`` or ``security``.
        severity: default severity 1 (info) .. 5 (critical) for alerts carrying this label.
    """

    id: str
    en: str
    zh: str
    pillar: str = "risk"
    severity: int = 3


_LABELS: dict[str, RiskLabel] = {}


def register_label(label: RiskLabel, *, replace: bool = False) -> RiskLabel:
    """Add a label to the taxonomy. Re-registering an identical label is a no-op."""
    old = _LABELS.get(label.id)
    if old is not None and old != label and not replace:
        raise InputError(f"risk label {label.id!r} is already registered with different names")
    _LABELS[label.id] = label
    return label


def get_label(label_id: str) -> RiskLabel:
    try:
        return _LABELS[label_id]
    except KeyError:
        raise InputError(f"unknown risk label {label_id!r}") from None


def is_label(label_id: str) -> bool:
    return label_id in _LABELS


def all_labels() -> list[RiskLabel]:
    return sorted(_LABELS.values(), key=lambda lab: (lab.pillar, lab.id))


_BUILTIN = [
    # risk control (风控)
    RiskLabel("multi_lending", "Multi-platform borrowing", "多头借贷"),
    RiskLabel("forged_application", "Forged application data", "资料伪造"),
    RiskLabel("gang_fraud", "Gang fraud", "团伙欺诈", severity=4),
    RiskLabel("cash_out", "Card cash-out", "套现"),
    RiskLabel("gambling", "Gambling", "赌博"),
    RiskLabel("device_risk", "Risky device environment", "设备环境风险"),
    RiskLabel("promotion_abuse", "Promotion abuse", "羊毛党", severity=2),
    RiskLabel("account_takeover", "Account takeover", "盗号", severity=4),
    RiskLabel("money_laundering", "Money laundering", "洗钱", severity=4),
    RiskLabel("blacklist", "Blacklisted entity", "黑名单命中", severity=4),
    # base security (基础安全): web
    RiskLabel("web_sqli", "SQL injection", "SQL注入", "security", 4),
    RiskLabel("web_xss", "Cross-site scripting", "跨站脚本", "security", 3),
    RiskLabel("web_rce", "Remote code execution", "远程命令执行", "security", 5),
    RiskLabel("web_lfi", "Local file inclusion", "本地文件包含", "security", 4),
    RiskLabel("web_rfi", "Remote file inclusion", "远程文件包含", "security", 4),
    RiskLabel("web_ssrf", "Server-side request forgery", "服务端请求伪造", "security", 4),
    RiskLabel("web_php", "PHP injection", "PHP注入", "security", 4),
    RiskLabel("web_java", "Java attack", "Java攻击", "security", 4),
    RiskLabel("web_scanner", "Vulnerability scanner", "漏洞扫描器", "security", 2),
    RiskLabel("web_protocol", "HTTP protocol violation", "协议违规", "security", 2),
    RiskLabel("bot", "Malicious bot", "恶意爬虫", "security", 2),
    RiskLabel("cc_flood", "CC (HTTP) flood", "CC攻击", "security", 4),
    # host
    RiskLabel("brute_force", "Brute force", "暴力破解", "security", 3),
    RiskLabel("password_spraying", "Password spraying", "密码喷洒", "security", 3),
    RiskLabel("compromise", "Login after brute force", "爆破成功", "security", 5),
    RiskLabel("baseline", "Security baseline violation", "安全基线不合规", "security", 3),
    RiskLabel("unauthorized_access", "Service open without auth", "未授权访问", "security", 4),
    RiskLabel("vulnerable_component", "Vulnerable component", "组件漏洞", "security", 4),
    RiskLabel("malware", "Trojan or malware", "木马", "security", 5),
    RiskLabel("webshell", "Webshell", "网页后门", "security", 5),
    # flows
    RiskLabel("ddos_syn_flood", "SYN flood", "SYN洪水攻击", "security", 4),
    RiskLabel("ddos_udp_flood", "UDP flood", "UDP洪水攻击", "security", 4),
    RiskLabel("ddos_icmp_flood", "ICMP flood", "ICMP洪水攻击", "security", 4),
    RiskLabel("ddos_amplification", "Reflection/amplification", "反射放大攻击", "security", 4),
    RiskLabel("ddos_carpet_bombing", "Carpet bombing", "地毯式攻击", "security", 4),
    RiskLabel("port_scan", "Port scan", "端口扫描", "security", 2),
    RiskLabel("dos_app_layer", "Application-layer DoS", "应用层拒绝服务", "security", 4),
    RiskLabel("botnet", "Botnet traffic", "僵尸网络", "security", 4),
]
for _lab in _BUILTIN:
    register_label(_lab)
