"""Group behaviour patterns: fraud rings, risky devices and device farms, and coupon (promotion) abuse.

Each generator returns a :class:`~.sim_base.Block` of exactly ``n`` applications; see docs/credit.md.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from fsbrain.domains.credit import sim_people as sp
from fsbrain.domains.credit.sim_base import (
    HOUR_WEIGHTS,
    N_PLATFORMS,
    NIGHT_WEIGHTS,
    PLATFORM_WEIGHTS,
    PLATFORMS,
    Block,
    Clock,
    base_app,
    ring_sizes,
    uids,
)
from fsbrain.domains.credit.sim_population import IP_OCTETS, MODELS, make_people

EMULATOR_MODELS = np.array(["sdk_gphone64_x86_64", "Android SDK built for x86", "MuMu", "LDPlayer", "Nox"])
SHARES = np.array(["device", "contact", "address", "ip_range"])

__all__ = ["EMULATOR_MODELS", "SHARES", "device_risk", "gang", "promotion_abuse"]


def _group_ids(prefix: str, rng: np.random.Generator, k: int) -> np.ndarray:
    return np.char.add(prefix, sp.hex_of(rng.integers(0, 2**40, k), 10))


def _subnet_ips(rng: np.random.Generator, group: np.ndarray, first: np.ndarray) -> np.ndarray:
    """IPs in one /24 per group: ``first`` octet per group, random shared second and third octets."""
    k = len(first)
    o2, o3 = rng.integers(1, 255, k), rng.integers(0, 255, k)
    return sp.ipv4(len(group), rng, np.array([0]), first=first[group], second=o2[group], third=o3[group])


def _first_of(sizes: np.ndarray) -> np.ndarray:
    return np.repeat(np.cumsum(sizes) - sizes, sizes)


def gang(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Rings of 5–30 members sharing at least two of: devices, contact phones, an address, an IP /24.

    Each ring applies in 1–3 bursts (each 0.5–6 hours, biased to the night) at 1–3 platforms per burst;
    a member joins each burst with probability 0.7 (at least one).
    """
    sizes = ring_sizes(rng, int(n / 1.4) + 1, 5, 30)
    r, m = len(sizes), int(sizes.sum())
    p = make_people(rng, m, ref)
    ring = np.repeat(np.arange(r), sizes)
    head = _first_of(sizes)
    share = rng.random((r, 4)) < 0.55
    few = share.sum(axis=1) < 2
    share[few, rng.integers(0, 4, int(few.sum()))] = True
    share[few, rng.integers(0, 4, int(few.sum()))] = True
    few = share.sum(axis=1) < 2
    share[few, 0] = share[few, 1] = True
    s = share[ring]
    # devices: one per ~6 members, same model as the ring's first member
    n_dev = np.maximum(1, sizes // 6)
    dev = rng.integers(0, 2**56, r)[ring] + (rng.random(m) * n_dev[ring]).astype(np.int64)
    d = np.flatnonzero(s[:, 0])
    p.device_id[d] = sp.hex_of(dev[d], 16)
    for col in ("os", "os_version", "model"):
        getattr(p, col)[d] = getattr(p, col)[head[d]]
    # contacts: two organiser phones used as emergency contacts by the members
    org_phone = sp.phones(rng.choice(len(sp.geo().place_weights), (r, 2)).ravel(), rng).reshape(r, 2)
    org_name = p.name[rng.integers(0, m, (r, 2))]
    c = np.flatnonzero(s[:, 1])
    p.c_phone[c, 0], p.c_name[c, 0], p.c_rel[c, 0] = org_phone[ring[c], 0], org_name[ring[c], 0], "friend"
    c2 = c[rng.random(len(c)) < 0.5]
    p.c_n[c2] = np.maximum(p.c_n[c2], 2)
    p.c_phone[c2, 1], p.c_name[c2, 1], p.c_rel[c2, 1] = org_phone[ring[c2], 1], org_name[ring[c2], 1], "relative"
    # address (and often the employer) of the ring's first member
    a = np.flatnonzero(s[:, 2])
    for col in ("addr_province", "addr_province_code", "addr_city", "addr_detail", "place", "gps_lat", "gps_lon"):
        getattr(p, col)[a] = getattr(p, col)[head[a]]
    emp = a[rng.random(len(a)) < 0.5]
    p.employer[emp], p.occupation[emp] = p.employer[head[emp]], p.occupation[head[emp]]
    # one /24 per ring, residential or data-centre
    dc = rng.random(r) < 0.4
    first = np.where(dc, rng.choice(IP_OCTETS["datacenter"], r), rng.choice(IP_OCTETS["residential"], r))
    i = np.flatnonzero(s[:, 3])
    p.ip[i] = _subnet_ips(rng, ring, first)[i]
    p.ip_type[i] = np.where(dc[ring[i]], "datacenter", "residential")
    # bursts
    n_burst = rng.integers(1, 4, r)
    t0 = clock.sample(rng, r * 3, hours=HOUR_WEIGHTS + 2 * NIGHT_WEIGHTS).reshape(r, 3)
    dur = rng.uniform(0.5, 6, r) * 3600
    plats = rng.choice(N_PLATFORMS, (r, 3, 3), p=PLATFORM_WEIGHTS)
    n_plat = rng.integers(1, 4, (r, 3))
    joined = (rng.random((m, 3)) < 0.7) & (np.arange(3) < n_burst[ring][:, None])
    joined[~joined.any(axis=1), 0] = True
    short = n - int(joined.sum())
    if short > 0:  # small runs: let members join further bursts until there are n applications
        joined.ravel()[np.flatnonzero(~joined.ravel())[:short]] = True
    who, burst = np.nonzero(joined)
    who, burst = who[:n], burst[:n]
    rg = ring[who]
    ts = np.minimum(t0[rg, burst] + rng.random(len(who)) * dur[rg], clock.end - 1)
    platform = plats[rg, burst, (rng.random(len(who)) * n_plat[rg, burst]).astype(np.int64)]
    names = np.array(["+".join(SHARES[row]) for row in share])
    b = base_app(rng, p.take(who), ts, platform, "gang_fraud", names[rg], _group_ids("ring-", rng, r)[rg],
                 uids(rng, m)[who], 0.8)
    b.app["amount"] = np.round(rng.uniform(5000, 50000, len(who)), -2)
    return b


def device_risk(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Individuals on emulators, rooted phones or data-centre/proxy/VPN IPs (70%), and device farms (30%)."""
    n_farm = int(n * 0.3)
    solo = n - n_farm
    blocks = []
    if solo > 0:
        p = make_people(rng, solo, ref)
        kinds = np.array(["emulator", "rooted", "datacenter_ip", "proxy", "vpn"])[
            rng.choice(5, solo, p=[0.3, 0.25, 0.2, 0.15, 0.1])]
        emu = kinds == "emulator"
        p.os[emu], p.os_version[emu] = "android", "9"
        p.model[emu] = EMULATOR_MODELS[rng.integers(0, len(EMULATOR_MODELS), int(emu.sum()))]
        p.rooted |= (kinds == "rooted") | (emu & (rng.random(solo) < 0.5))
        extra = rng.choice(np.array(["datacenter", "proxy", "vpn"]), solo)
        ipt = np.where(np.isin(kinds, ["datacenter_ip", "proxy", "vpn"]), np.char.replace(kinds, "_ip", ""),
                       np.where(rng.random(solo) < 0.45, extra, p.ip_type))
        for t, octs in IP_OCTETS.items():
            rows = np.flatnonzero((ipt == t) & (ipt != p.ip_type))
            p.ip[rows] = sp.ipv4(len(rows), rng, octs)
        p.ip_type = ipt.astype(p.ip_type.dtype)
        ts = clock.sample(rng, solo, hours=HOUR_WEIGHTS + NIGHT_WEIGHTS)
        platform = rng.choice(N_PLATFORMS, solo, p=PLATFORM_WEIGHTS)
        b = base_app(rng, p, ts, platform, "device_risk", kinds, "", uids(rng, solo), 0.6)
        b.app["emulator"] = emu
        blocks.append(b)
    if n_farm > 0:
        blocks.append(_device_farms(rng, n_farm, clock, ref))
    return Block.concat(blocks)


def _device_farms(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Farms of 10–40 applications, each with a fresh device id (reset) but one model, OS build and /24."""
    sizes = ring_sizes(rng, n, 10, 40)
    f = len(sizes)
    farm = np.repeat(np.arange(f), sizes)[:n]
    p = make_people(rng, n, ref)
    emu = rng.random(f) < 0.5
    model = np.where(emu, rng.choice(EMULATOR_MODELS, f), rng.choice(np.array(MODELS["android"]), f))
    p.os[:], p.os_version[:], p.model[:] = "android", np.where(emu, "9", "10")[farm], model[farm]
    p.rooted[:] = (rng.random(f) < 0.7)[farm]
    p.device_id[:] = sp.hex_ids(n, rng)  # the farm resets the device id before every application
    dc = rng.random(f) < 0.6
    first = np.where(dc, rng.choice(IP_OCTETS["datacenter"], f), rng.choice(IP_OCTETS["residential"], f))
    p.ip[:] = _subnet_ips(rng, farm, first)
    p.ip_type[:] = np.where(dc, "datacenter", "residential")[farm]
    start = clock.sample(rng, f)
    span = rng.uniform(0.2, 3.0, f) * 86400
    ts = np.minimum(start[farm] + rng.random(n) * span[farm], clock.end - 1)
    platform = rng.choice(N_PLATFORMS, (f, 3), p=PLATFORM_WEIGHTS)[farm, rng.integers(0, 3, n)]
    b = base_app(rng, p, ts, platform, "device_risk", "device_farm", _group_ids("farm-", rng, f)[farm],
                 uids(rng, n), 0.9)
    b.app["emulator"] = emu[farm]
    b.app["app_version"][:] = "5.8.0"
    return b


def promotion_abuse(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Groups of 8–40 brand-new accounts on 1–3 devices claiming new-user coupons within 1–3 days.

    Accounts are opened minutes before applying; 60% of the phones are virtual-operator numbers; one or
    two IPs per group; small amounts on short terms.
    """
    sizes = ring_sizes(rng, n, 8, 40)
    g = len(sizes)
    grp = np.repeat(np.arange(g), sizes)[:n]
    p = make_people(rng, n, ref)
    virtual = rng.random(n) < 0.6
    p.phone[virtual] = sp.phones(p.place[virtual], rng, virtual=np.ones(int(virtual.sum()), dtype=bool))
    p.email[:] = ""
    head = _first_of(sizes)[:n]
    n_dev = rng.integers(1, 4, g)
    dev = rng.integers(0, 2**56, g)[grp] + (rng.random(n) * n_dev[grp]).astype(np.int64)
    p.device_id[:] = sp.hex_of(dev, 16)
    for col in ("os", "os_version", "model", "ip", "ip_type"):
        getattr(p, col)[:] = getattr(p, col)[head]
    second_ip = rng.random(n) < 0.3
    p.ip[second_ip] = p.ip[np.minimum(head[second_ip] + 1, n - 1)]
    p.ip_type[second_ip] = p.ip_type[np.minimum(head[second_ip] + 1, n - 1)]
    start = clock.sample(rng, g, hours=HOUR_WEIGHTS + NIGHT_WEIGHTS)
    span = rng.uniform(1, 3, g) * 86400
    ts = np.minimum(start[grp] + rng.random(n) * span[grp], clock.end - 1)
    platform = rng.choice(N_PLATFORMS, (g, 2), p=PLATFORM_WEIGHTS)[grp, (rng.random(n) < 0.3).astype(np.int64)]
    b = base_app(rng, p, ts, platform, "promotion_abuse", "coupon_farm", _group_ids("promo-", rng, g)[grp],
                 uids(rng, n), 1.0)
    b.app["account_created"] = ts - rng.uniform(60, 3600, n)
    b.app["coupon"] = np.char.add("NU-", PLATFORMS[platform]).astype("U24")
    b.app["product"][:] = "new-user-special"
    b.app["amount"] = np.round(rng.uniform(500, 2000, n), -2)
    b.app["term"] = rng.choice(np.array([3, 6]), n)
    return b
