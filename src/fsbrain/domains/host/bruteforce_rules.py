"""The failure-side detections of :class:`~fsbrain.domains.host.bruteforce.BruteForceDetector`.

One failed login becomes one ``update_get`` call on the state backend with every windowed count it
feeds (per address and jail, per subnet, per account, per address over hours, accounts per address),
then each detection compares its counts with its thresholds. Kept apart from the detector class so each
module stays small; the detector is the only caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsbrain.core.model import Alert
from fsbrain.state import WindowOp

if TYPE_CHECKING:
    from fsbrain.domains.host.bruteforce import AuthEvent, BruteForceDetector
    from fsbrain.domains.host.jails import JailConfig

MAX_ATTEMPTS_PER_EVENT = 20


def on_failure(det: BruteForceDetector, ev: AuthEvent, jail: JailConfig) -> list[Alert]:
    """Update every count a failure feeds and return the alerts whose thresholds it crosses."""
    from fsbrain.domains.host.bruteforce import subnet_of

    d = det.config.detections
    host, ts = ev.host, ev.time
    n = max(1, min(int(ev.attempts or 1), MAX_ATTEMPTS_PER_EVENT))
    jspec = det._jail_spec(jail)
    ops = [WindowOp(jspec, host)] * n
    i_jail = len(ops) - 1
    ops += [WindowOp(det.s_slow, host)] * n
    i_slow = len(ops) - 1
    ops += [WindowOp(det.s_spray_fail, host)] * n
    i_spray = len(ops) - 1
    ops += [WindowOp(det.s_comp_ip, host)] * n
    i_users = i_sub = i_acct = -1
    if ev.user:
        ops.append(WindowOp(det.s_spray_users, host, ev.user))
        i_users = len(ops) - 1
        ops += [WindowOp(det.s_comp_acct, ev.user)] * n
        ops += [WindowOp(det.s_acct_fail, ev.user)] * n
        ops.append(WindowOp(det.s_acct_ips, ev.user, host))
        i_acct = len(ops) - 1
    subnet = subnet_of(host, d.subnet.prefix_v4, d.subnet.prefix_v6) if d.subnet.enabled else None
    if subnet is not None:
        ops += [WindowOp(det.s_subnet_fail, subnet)] * n
        ops.append(WindowOp(det.s_subnet_ips, subnet, host))
        i_sub = len(ops) - 1
    vals = det.backend.update_get(ops, ts)
    out: list[Alert] = []
    where = {"jail": jail.name, "user": ev.user, "where": ev.where}

    # fail2ban jail: maxretry failures within findtime -> ban (growing for repeat offenders)
    count = int(vals[i_jail])
    if count >= jail.maxretry and not det.is_banned(jail.name, host, ts):
        out.extend(_ban(det, ev, jail, count))

    if d.low_and_slow.enabled:
        slow = int(vals[i_slow])
        last = det._last_ban.get(host)
        never_banned = last is None or ts - last > d.low_and_slow.window
        if slow >= d.low_and_slow.min_failures and never_banned and \
                det._once("low_and_slow", host, ts, d.low_and_slow.window):
            r = det._reason("host.bf.low_and_slow", "brute_force", f"ip_failures_{int(d.low_and_slow.window)}s",
                            slow, d.low_and_slow.min_failures, 550,
                            f"{slow} failures over {d.low_and_slow.window / 3600:g} h, each burst under "
                            f"the {jail.name} jail's {jail.maxretry} per {jail.findtime:g}s")
            out.append(det._alert(label="brute_force", severity=3, score=550, entity_type="ip", entity=host,
                                  title=f"low-and-slow brute force from {host}: {slow} failures in "
                                        f"{d.low_and_slow.window / 3600:g} h",
                                  reasons=[r], ts=ts, window=d.low_and_slow.window, action="ban",
                                  details={**where, "ban_until": ts + jail.bantime if jail.bantime > 0 else None}))

    if d.spraying.enabled and i_users >= 0:
        users, fails = int(vals[i_users]), int(vals[i_spray])
        ratio = fails / users if users else 0.0
        if users >= d.spraying.min_accounts and ratio <= d.spraying.max_attempts_per_account and \
                det._once("spraying", host, ts, d.spraying.window):
            rs = [det._reason("host.bf.spraying", "password_spraying", f"ip_distinct_accounts_{int(d.spraying.window)}s",
                              users, d.spraying.min_accounts, 700, f"{users} different accounts tried"),
                  det._reason("host.bf.spraying", "password_spraying", "failures_per_account", round(ratio, 2),
                              d.spraying.max_attempts_per_account, 0, "about one password per account")]
            out.append(det._alert(label="password_spraying", severity=4, score=700, entity_type="ip", entity=host,
                                  title=f"password spraying from {host}: {users} accounts, {ratio:.1f} tries each",
                                  reasons=rs, ts=ts, window=d.spraying.window, action="ban",
                                  details={**where, "ban_until": ts + jail.bantime if jail.bantime > 0 else None}))

    if d.distributed.enabled and i_acct >= 0 and ev.user:
        ips, fails = int(vals[i_acct]), int(vals[i_acct - 1])
        if ips >= d.distributed.min_ips and fails >= d.distributed.min_failures and \
                det._once("distributed", ev.user, ts, d.distributed.window):
            rs = [det._reason("host.bf.distributed", "brute_force", f"account_distinct_ips_{int(d.distributed.window)}s",
                              ips, d.distributed.min_ips, 700, f"account {ev.user} attacked from {ips} addresses"),
                  det._reason("host.bf.distributed", "brute_force", f"account_failures_{int(d.distributed.window)}s",
                              fails, d.distributed.min_failures, 0, f"{fails} failed logins")]
            out.append(det._alert(label="brute_force", severity=4, score=700, entity_type="account", entity=ev.user,
                                  title=f"distributed brute force on account {ev.user}: {fails} failures "
                                        f"from {ips} addresses",
                                  reasons=rs, ts=ts, window=d.distributed.window, action="review",
                                  details={"jail": jail.name, "last_host": host, "where": ev.where}))

    if subnet is not None and i_sub >= 0:
        ips, fails = int(vals[i_sub]), int(vals[i_sub - 1])
        if ips >= d.subnet.min_ips and fails >= d.subnet.min_failures and \
                det._once("subnet", subnet, ts, d.subnet.window):
            rs = [det._reason("host.bf.subnet", "brute_force", f"subnet_distinct_ips_{int(d.subnet.window)}s",
                              ips, d.subnet.min_ips, 650, f"{ips} addresses of {subnet} failing"),
                  det._reason("host.bf.subnet", "brute_force", f"subnet_failures_{int(d.subnet.window)}s",
                              fails, d.subnet.min_failures, 0, f"{fails} failed logins from {subnet}")]
            out.append(det._alert(label="brute_force", severity=3, score=650, entity_type="subnet", entity=subnet,
                                  title=f"brute force from subnet {subnet}: {fails} failures from {ips} addresses",
                                  reasons=rs, ts=ts, window=d.subnet.window, action="ban",
                                  details={"jail": jail.name, "last_host": host,
                                           "ban_until": ts + jail.bantime if jail.bantime > 0 else None}))
    return out


def _ban(det: BruteForceDetector, ev: AuthEvent, jail: JailConfig, count: int) -> list[Alert]:
    d = det.config.detections
    host, ts = ev.host, ev.time
    bans = int(det.backend.update_get([WindowOp(det.s_bans, host)], ts)[0])
    if jail.bantime < 0:
        length = -1.0
    else:
        length = min(jail.bantime * jail.bantime_factor ** (bans - 1), max(jail.bantime, jail.bantime_max))
    until = -1.0 if length < 0 else ts + length
    det._banned[(jail.name, host)] = until
    det._last_ban[host] = ts
    r = det._reason(f"host.bf.jail.{jail.name}", "brute_force", f"{jail.name}_ip_failures_{int(jail.findtime)}s",
                    count, jail.maxretry, 600, f"{count} failed logins within {jail.findtime:g}s")
    out = [det._alert(label="brute_force", severity=3, score=600, entity_type="ip", entity=host,
                      title=f"{jail.name}: {count} failed logins from {host} in {jail.findtime:g}s",
                      reasons=[r], ts=ts, window=jail.findtime, action="ban",
                      details={"jail": jail.name, "user": ev.user, "where": ev.where, "ban_number": bans,
                               "bantime": length, "ban_until": None if until < 0 else until})]
    if d.recidive.enabled and bans >= d.recidive.min_bans and det._once("recidive", host, ts, d.recidive.bantime):
        r2 = det._reason("host.bf.recidive", "brute_force", f"ip_bans_{int(d.recidive.window)}s", bans,
                         d.recidive.min_bans, 800, f"banned {bans} times within {d.recidive.window / 86400:g} days")
        det._banned[("recidive", host)] = ts + d.recidive.bantime
        out.append(det._alert(label="brute_force", severity=4, score=800, entity_type="ip", entity=host,
                              title=f"repeat offender {host}: banned {bans} times", reasons=[r2], ts=ts,
                              window=d.recidive.window, action="ban",
                              details={"jail": "recidive", "bantime": d.recidive.bantime,
                                       "ban_until": ts + d.recidive.bantime}))
    return out
