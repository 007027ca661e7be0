"""A synthetic population of loan applicants: people, homes, phones, cards, jobs, devices and contacts.

Everything is column arrays (one row per person) so a million people take seconds. See docs/credit.md
(section "Simulator") for the distributions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

from fsbrain.domains.credit import sim_people as sp
from fsbrain.domains.credit.identity import province_name

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
                "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力斌宇浩凯鹏飞鑫欣怡佳琪雨晨子涵梓轩博思婷"
             "雪梅海波林峰晓丹宁亮俊鹤诗嘉颖琳瑶志永国春金成庆东")
ROADS = ["人民路", "解放路", "中山路", "建设路", "和平路", "胜利路", "新华路", "文化路", "长江路", "黄河路", "友谊路",
         "光明路", "幸福路", "青年路", "团结路", "工业路", "东风路", "朝阳路", "学府路", "滨江路", "迎宾路", "花园路",
         "春风路", "科技路", "世纪大道", "创业路", "振兴路", "商业街", "育才路", "金桥路"]
ESTATES = ["阳光花园", "锦绣家园", "幸福里", "翠苑", "金色家园", "碧水湾", "华府", "名都", "新村", "丽景苑", "康城",
           "御景园", "星河湾", "绿洲小区", "和谐家园", "书香门第", "滨江花园", "东方明珠苑", "金地花园", "职工宿舍"]
BRANDS = ["华兴", "宏达", "鑫源", "恒通", "天成", "盛世", "金诚", "远航", "博远", "中科", "瑞丰", "永盛", "新世纪",
          "创新", "联合", "东方", "海天", "星辰", "佳和", "安泰", "启明", "正大", "同创", "力拓", "润达", "锦程"]
INDUSTRIES = ["科技", "贸易", "物流", "建筑工程", "餐饮管理", "电子", "机械制造", "服装", "医药", "教育咨询",
              "房地产经纪", "汽车服务", "食品", "文化传媒", "网络科技", "商贸", "物业管理", "家政服务"]
# key, weight, median monthly income (CNY), has employer, min age, max age
OCCUPATIONS = [
    ("factory_worker", 0.17, 5500, True, 18, 60), ("sales", 0.12, 7000, True, 20, 55),
    ("engineer", 0.10, 15000, True, 22, 55), ("teacher", 0.05, 8000, True, 22, 60),
    ("driver", 0.08, 6500, True, 21, 60), ("service_staff", 0.12, 4500, True, 18, 55),
    ("civil_servant", 0.03, 9000, True, 22, 60), ("doctor", 0.02, 14000, True, 25, 60),
    ("office_clerk", 0.10, 6500, True, 20, 55), ("self_employed", 0.10, 10000, False, 22, 65),
    ("freelancer", 0.06, 7000, False, 20, 50), ("student", 0.03, 1500, False, 18, 25),
    ("unemployed", 0.02, 0, False, 18, 65),
]
MODELS = {
    "android": ["Xiaomi 14", "Redmi K70", "Redmi Note 13", "OPPO Reno11", "OPPO A2", "vivo X100", "vivo Y78",
                "HONOR X50", "realme GT5", "OnePlus 12"],
    "ios": ["iPhone 12", "iPhone 13", "iPhone 14", "iPhone 15", "iPhone 15 Pro", "iPhone 16"],
    "harmonyos": ["HUAWEI Mate 60", "HUAWEI nova 12", "HUAWEI Pura 70"],
}
OS_VERSIONS = {"android": ["11", "12", "13", "14"], "ios": ["16.7", "17.5", "18.1"], "harmonyos": ["4.0", "4.2"]}
APP_VERSIONS = np.array(["5.8.0", "5.9.1", "6.0.0", "6.1.2"])
IP_OCTETS = {
    "mobile": np.array([39, 112, 117, 111, 223, 120, 183, 36, 42, 106]),
    "residential": np.array([58, 59, 60, 61, 113, 114, 115, 116, 119, 122, 123, 124, 125, 171, 175, 180, 182, 218]),
    "datacenter": np.array([47, 8, 101, 139, 118, 49, 81, 82]),
    "proxy": np.array([45, 103, 104, 154, 156, 185, 194, 198]),
    "vpn": np.array([45, 103, 104, 154, 156, 185, 194, 198]),
}
# approximate provincial-capital coordinates for GPS noise
CAPITALS = {"11": (39.9, 116.4), "12": (39.1, 117.2), "13": (38.0, 114.5), "14": (37.9, 112.5),
            "15": (40.8, 111.7), "21": (41.8, 123.4), "22": (43.9, 125.3), "23": (45.8, 126.5),
            "31": (31.2, 121.5), "32": (32.1, 118.8), "33": (30.3, 120.2), "34": (31.8, 117.3),
            "35": (26.1, 119.3), "36": (28.7, 115.9), "37": (36.7, 117.0), "41": (34.8, 113.7),
            "42": (30.6, 114.3), "43": (28.2, 113.0), "44": (23.1, 113.3), "45": (22.8, 108.4),
            "46": (20.0, 110.3), "50": (29.6, 106.5), "51": (30.7, 104.1), "52": (26.6, 106.7),
            "53": (25.0, 102.7), "54": (29.7, 91.1), "61": (34.3, 108.9), "62": (36.1, 103.8),
            "63": (36.6, 101.8), "64": (38.5, 106.3), "65": (43.8, 87.6)}


@dataclass
class People:
    """One row per person; empty strings and NaN mean "not given"."""

    name: np.ndarray
    surname: np.ndarray
    male: np.ndarray
    birth: np.ndarray
    id_number: np.ndarray
    id_province: np.ndarray
    addr_province: np.ndarray
    addr_province_code: np.ndarray
    addr_city: np.ndarray
    addr_detail: np.ndarray
    place: np.ndarray
    phone: np.ndarray
    card: np.ndarray
    email: np.ndarray
    occupation: np.ndarray
    employer: np.ndarray
    income: np.ndarray
    education: np.ndarray
    marital: np.ndarray
    res_type: np.ndarray
    res_years: np.ndarray
    device_id: np.ndarray
    os: np.ndarray
    os_version: np.ndarray
    model: np.ndarray
    rooted: np.ndarray
    ip: np.ndarray
    ip_type: np.ndarray
    gps_lat: np.ndarray
    gps_lon: np.ndarray
    c_n: np.ndarray
    c_name: np.ndarray  # (m, 3)
    c_phone: np.ndarray  # (m, 3)
    c_rel: np.ndarray  # (m, 3)

    def __len__(self) -> int:
        return len(self.name)

    def take(self, idx: np.ndarray) -> People:
        """The people at ``idx`` (repeats allowed), as a new People."""
        return People(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def _pick(rng: np.random.Generator, items: list[str] | np.ndarray, m: int, p: np.ndarray | None = None) -> np.ndarray:
    return np.asarray(items)[rng.choice(len(items), m, p=p)]


def names(rng: np.random.Generator, m: int, surnames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Chinese names (surname + one or two given characters); returns (names, surnames)."""
    sw = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.9
    sur = surnames if surnames is not None else _pick(rng, SURNAMES, m, sw / sw.sum())
    g1, g2 = _pick(rng, GIVEN, m), _pick(rng, GIVEN, m)
    given = np.where(rng.random(m) < 0.7, np.char.add(g1, g2), g1)
    return np.char.add(sur, given), sur


def addresses(rng: np.random.Generator, id_region_names: list[str] | np.ndarray, m: int) -> np.ndarray:
    """Street addresses: district + road + number + estate + building + room."""
    num = rng.integers(1, 800, m).astype(str)
    bld, room = rng.integers(1, 30, m).astype(str), (rng.integers(1, 33, m) * 100 + rng.integers(1, 5, m)).astype(str)
    parts = [np.asarray(id_region_names), _pick(rng, ROADS, m), num, np.full(m, "号"), _pick(rng, ESTATES, m),
             bld, np.full(m, "栋"), room, np.full(m, "室")]
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(out, p)
    return out


def employers(rng: np.random.Generator, city: np.ndarray, m: int) -> np.ndarray:
    short = np.char.rstrip(city.astype(str), "市")
    return np.char.add(np.char.add(np.char.add(short, _pick(rng, BRANDS, m)), _pick(rng, INDUSTRIES, m)), "有限公司")


def make_people(rng: np.random.Generator, m: int, ref_day: dt.date) -> People:
    """A population of ``m`` ordinary applicants living in China on ``ref_day``."""
    g = sp.geo()
    id_prov = g.provinces[rng.choice(len(g.provinces), m, p=g.province_weights)]
    migrant = rng.random(m) < 0.3
    home_prov = np.where(migrant, g.place_province[rng.choice(len(g.place_weights), m,
                                                               p=g.place_weights / g.place_weights.sum())], id_prov)
    place = sp.sample_places(home_prov, rng)
    region = sp.counties(place, ~migrant, id_prov, rng)
    age = np.clip(18 + rng.gamma(2.2, 6.0, m), 18, 66).astype(np.int64)
    ref = np.datetime64(ref_day, "D")
    birth = ref - (age * 365.25).astype("timedelta64[D]") - rng.integers(1, 365, m).astype("timedelta64[D]")
    old = rng.random(m) < 0.04  # some older IDs carry a since-retired county code of their province
    for prov in np.unique(id_prov[old]):
        rows = np.flatnonzero(old & (id_prov == prov))
        pool = g.retired_counties.get(str(prov))
        if pool is not None and len(pool):
            region[rows] = rng.choice(pool, len(rows))
    male = rng.random(m) < 0.55
    nm, sur = names(rng, m)
    phone_place = np.where(rng.random(m) < 0.85, place, sp.sample_places(id_prov, rng))
    occ_w = np.array([o[1] for o in OCCUPATIONS])
    occ = rng.choice(len(OCCUPATIONS), m, p=occ_w / occ_w.sum())
    young = age <= 24
    occ = np.where((occ == 11) & ~young, 0, occ)  # students are young
    med = np.array([o[2] for o in OCCUPATIONS], dtype=np.float64)[occ]
    income = np.round(med * rng.lognormal(0.0, 0.35, m), -2)
    has_emp = np.array([o[3] for o in OCCUPATIONS])[occ]
    city = g.place_city[place]
    emp = np.where(has_emp, employers(rng, city, m), "")
    edu_hi = np.isin(occ, [2, 3, 6, 7])
    education = np.where(edu_hi, _pick(rng, ["bachelor", "master", "bachelor", "doctor"], m),
                         _pick(rng, ["secondary", "vocational", "college", "bachelor", "primary"], m,
                               np.array([0.3, 0.3, 0.25, 0.12, 0.03])))
    marital = np.where(age < 25, "single", _pick(rng, ["married", "single", "divorced"], m, np.array([.62, .3, .08])))
    os_ = _pick(rng, ["android", "ios", "harmonyos"], m, np.array([0.62, 0.28, 0.10]))
    model, osv = np.empty(m, dtype="U16"), np.empty(m, dtype="U8")
    for o in MODELS:
        rows = np.flatnonzero(os_ == o)
        model[rows], osv[rows] = _pick(rng, MODELS[o], len(rows)), _pick(rng, OS_VERSIONS[o], len(rows))
    ip_type = _pick(rng, ["mobile", "residential", "vpn", "proxy", "datacenter"], m,
                    np.array([0.55, 0.428, 0.015, 0.004, 0.003]))
    ip = np.empty(m, dtype="U15")
    for t, octs in IP_OCTETS.items():
        rows = np.flatnonzero(ip_type == t)
        ip[rows] = sp.ipv4(len(rows), rng, octs)
    cap = np.array([CAPITALS.get(str(p), (31.0, 112.0)) for p in g.provinces])
    pidx = np.searchsorted(g.provinces, g.place_province[place])
    gps_on = rng.random(m) < 0.6
    lat = np.where(gps_on, cap[pidx, 0] + rng.normal(0, 0.25, m), np.nan).round(5)
    lon = np.where(gps_on, cap[pidx, 1] + rng.normal(0, 0.25, m), np.nan).round(5)
    short_prov = rng.random(m) < 0.3
    full = np.array([province_name(str(p)) or str(p) for p in g.provinces])[pidx]
    addr_prov = np.where(short_prov, np.char.rstrip(np.char.rstrip(full, "省"), "市"), full)
    district = [g.county_names.get(c, "") for c in sp.counties(place, np.ones(m, bool), home_prov, rng)]
    email_kind = rng.random(m)
    qq = np.char.add(rng.integers(10_000, 3_999_999_999, m).astype(str), "@qq.com")
    other = np.char.add(np.char.add(sp.hex_ids(m, rng, 8), "@"), _pick(rng, ["163.com", "126.com", "sina.com",
                                                                              "foxmail.com", "gmail.com"], m))
    people = People(
        name=nm, surname=sur, male=male, birth=birth, id_number=sp.id_numbers(region, birth, male, rng),
        id_province=id_prov, addr_province=addr_prov, addr_province_code=g.place_province[place],
        addr_city=city, addr_detail=addresses(rng, district, m), place=place,
        phone=sp.phones(phone_place, rng), card=np.where(rng.random(m) < 0.08, "", sp.cards(m, rng)),
        email=np.where(email_kind < 0.25, qq, np.where(email_kind < 0.4, other, "")),
        occupation=np.array([o[0] for o in OCCUPATIONS])[occ], employer=emp, income=income,
        education=education, marital=marital,
        res_type=_pick(rng, ["owned", "rented", "family", "dormitory", "other"], m,
                       np.array([0.35, 0.38, 0.18, 0.07, 0.02])),
        res_years=rng.integers(0, 15, m), device_id=sp.hex_ids(m, rng), os=os_, os_version=osv, model=model,
        rooted=rng.random(m) < 0.015, ip=ip, ip_type=ip_type, gps_lat=lat, gps_lon=lon,
        c_n=rng.choice([1, 2, 3], m, p=[0.1, 0.65, 0.25]),
        c_name=np.empty((m, 3), dtype="U4"), c_phone=np.empty((m, 3), dtype="U11"),
        c_rel=np.empty((m, 3), dtype="U10"),
    )
    for col in ("name", "addr_province", "addr_city", "addr_detail", "email", "employer", "id_number"):
        setattr(people, col, sp.tight(getattr(people, col)))
    _contacts(people, rng, phone_place)
    _households(people, rng)
    return people


def _contacts(p: People, rng: np.random.Generator, phone_place: np.ndarray) -> None:
    m = len(p)
    married = p.marital == "married"
    rels = [np.where(married, "spouse", "parent"),
            _pick(rng, ["parent", "sibling", "friend", "colleague"], m, np.array([0.35, 0.25, 0.25, 0.15])),
            _pick(rng, ["friend", "colleague", "relative", "sibling"], m, np.array([0.4, 0.3, 0.2, 0.1]))]
    for k in range(3):
        family = np.isin(rels[k], ["parent", "sibling"])
        nm, _ = names(rng, m, np.where(family, p.surname, _pick(rng, SURNAMES, m)))
        local = rng.random(m) < 0.7
        pl = np.where(local, phone_place, rng.choice(len(sp.geo().place_weights), m))
        p.c_name[:, k], p.c_phone[:, k], p.c_rel[:, k] = nm, sp.phones(pl, rng), rels[k]


def _households(p: People, rng: np.random.Generator) -> None:
    """Pair neighbours into households: shared address, the partner as contact, sometimes one device."""
    m = len(p)
    a = np.flatnonzero(rng.random(m - 1) < 0.12) if m > 1 else np.array([], dtype=np.int64)
    a = a[np.diff(np.concatenate(([-2], a))) > 1]  # no chains
    b = a + 1
    for col in ("addr_province", "addr_province_code", "addr_city", "addr_detail", "place", "res_type",
                "gps_lat", "gps_lon"):
        getattr(p, col)[b] = getattr(p, col)[a]
    rel = np.where(p.marital[a] == "married", "spouse", "friend")
    p.c_name[a, 0], p.c_phone[a, 0], p.c_rel[a, 0] = p.name[b], p.phone[b], rel
    p.c_name[b, 0], p.c_phone[b, 0], p.c_rel[b, 0] = p.name[a], p.phone[a], rel
    share = a[rng.random(len(a)) < 0.2]
    for col in ("device_id", "os", "os_version", "model", "ip", "ip_type"):
        getattr(p, col)[share + 1] = getattr(p, col)[share]
