"""Build the benign web-traffic corpus shipped with fsbrain (training and evaluation of the web pillar).

Generates realistic requests a bank or brokerage site receives: form posts (login with strong passwords,
transfers, applications with Chinese and English names and addresses, feedback with free text that uses
SQL and HTML words in plain language), JSON APIs, search queries in Chinese and English, static assets and
multipart file uploads. Two disjoint seeds produce a *train* split and an *eval* split; the eval split also
uses template variants the train split never sees (``_EVAL_ONLY``) so evaluation is not on memorised text.

Shaped values (:func:`make_shape_request`, GENERATED): ``SHAPES_TRAIN`` requests appended to the train split
after its first ``BASE_TRAIN`` (6,000), from a seed of their own, so those requests and ``benign_eval`` stay
byte-for-byte what they were. They carry values a bank's web app sees that look like attack syntax to a
character n-gram model: file paths (Unix, macOS, Windows drive and ``C:\\fakepath\\`` paths, upload file names
sent with their folder), document names (including default names such as ``New Text Document.txt``), redirect
paths (``next=/account/overview?tab=cards``), JSON documents inside query and form values
(``filter={"status":"open"}``) and filter expressions (``status==open,amount=gt=100``, ``amount:[10 TO 500]``).
Folder, file, key and value names are half from fixed lists and half common words (docstring English of the
split, jieba Chinese). Before them the benign data had no argument value with a path, a brace or a backslash
except random passwords, and the model scored ``/home/me/file.txt`` or ``{"a": 1}`` as attacks. They never
contain what attacks of the same shapes are made of (``..``, ``/etc/``, ``/proc/``, ``\\windows``, ``$``, ``<``,
``;``, ``{{``, ``select``, …: ``_SHAPE_FORBIDDEN``, checked on every value; a value that spells one is drawn
again). ``benign_shapes_eval.jsonl.gz`` holds the same kinds with the eval seed and folder, file and key names
the train split never uses, for the model's held-out evaluation (``scripts/build_web_model.py``); the peer
bench's ``benign_eval`` does not include them.

After them come ``SHORT_TRAIN`` short paths (``build_short_paths``) and ``SCHEMA_TRAIN`` JSON-Schema / OpenAPI
requests (``build_schemas``: documents with ``$schema``, ``$id``, ``$ref``, ``$defs`` keys as JSON bodies and as
query or form values), each from a seed of its own, so every earlier request stays byte-for-byte the same; their
eval-seed counterparts (``SHORT_EVAL``, ``SCHEMA_EVAL``) are appended to ``benign_shapes_eval``. The only ``$`` and
URLs the schema requests hold are JSON-Schema keywords and schema URLs (``schema_clean``); the rest passes
``_SHAPE_FORBIDDEN`` as above (no ``$ne``, ``$where``, ``${``, ``..``).

Usage::

    python scripts/build_web_benign.py   # writes src/fsbrain/domains/web/data/benign_{train,eval,shapes_eval}.jsonl.gz

Output: gzipped JSON lines ``{"method","uri","headers","body"}``.
"""

from __future__ import annotations

import gzip
import json
import random
import string
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "fsbrain" / "domains" / "web" / "data"
BASE_TRAIN = 6000  # requests of the train split from make_request (the first lines of benign_train.jsonl.gz)
SHAPES_TRAIN = 2500  # GENERATED shaped requests appended to the train split (make_shape_request)
SHAPES_EVAL = 600  # and the held-out shaped requests (benign_shapes_eval.jsonl.gz)
SHORT_TRAIN = 1000  # GENERATED short-path requests appended after the shaped ones (make_short_path_request)
SHORT_EVAL = 100  # and appended to benign_shapes_eval

ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱覃武戴孔汤庞樊兰殷施陶洪翟安颜倪严牛温芦季俞章鲁葛伍申尤毕聂柴焦向柳邢骆岳齐沿梅莫庄辛管祝左涂谷祁时舒耿牟卜路詹关苗凌费纪靳盛童欧甄项曲成游阳裴席卫查屈鲍位覃霍翁隋植甘景薄单包司柏宁柯阮桂闵欧阳解强丛华车冉房边"
ZH_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强海燕晓东子涵浩然一诺梓萱欣怡思远宇轩雨桐佳琪俊杰文博嘉怡天佑"
EN_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
            "William", "Barbara", "Sean", "Siobhan", "Zoë", "José", "François", "Anne-Marie", "Mei", "Wei",
            "Aarav", "Priya", "Olga", "Björn", "Chloé", "Liam", "Noah", "Emma", "Ava", "Sophia"]
EN_LAST = ["Smith", "Johnson", "O'Brien", "O'Neil", "D'Angelo", "Müller", "García", "Nguyen", "van der Berg",
           "Smith-Jones", "MacDonald", "Wang", "Li", "Chen", "Kowalski", "Ivanov", "Dubois", "Rossi", "Kim"]
ZH_CITIES = ["北京市朝阳区", "上海市浦东新区", "广州市天河区", "深圳市南山区", "杭州市西湖区", "成都市武侯区",
             "南京市鼓楼区", "武汉市洪山区", "西安市雁塔区", "重庆市渝中区", "苏州市工业园区", "天津市和平区"]
ZH_ROADS = ["建国路", "中山路", "人民路", "解放路", "科技园南路", "世纪大道", "长安街", "滨江大道", "学院路"]
EN_STREETS = ["Main St.", "Oak Avenue", "Park Rd", "King's Road", "Elm Street, Apt #4B", "5th Ave, Suite 300",
              "Rue de l'Église", "Broadway", "Queen's Gate", "Baker St. (rear entrance)"]
ZH_QUERIES = ["信用卡 还款", "房贷利率 2024", "理财产品 收益率 排行", "如何开通网上银行", "外汇 牌价 美元",
              "定期存款 利息 计算", "基金定投 怎么 选", "养老金 账户 查询", "手机银行 转账 限额", "贷款 提前还款 违约金",
              "招商银行 网点 营业时间", "黄金 价格 走势", "大额存单 起存金额", "ETF 和 LOF 的区别", "个人所得税 专项附加扣除",
              "信用报告 怎么 查", "汇率换算 人民币 日元", "数字人民币 钱包", "保险 理赔 流程", "港股通 开户 条件",
              "转账 失败 原因", "银行卡 挂失 补办", "公积金 贷款 额度", "股票 分红 除权", "开户行 查询"]
EN_QUERIES = ["mortgage rates today", "how to open a savings account", "best credit card for travel",
              "wire transfer fees international", "what is an ETF", "select a checking account",
              "union bank routing number", "drop in interest rates 2024", "where can I find my IBAN",
              "401(k) vs IRA", "is 1 = 1 in boolean logic", "C# or Java for banking apps", "AT&T bill pay",
              "rates > 5% savings", "script for calling the bank", "Q&A: what's a CD?", "S&P 500 index fund",
              "how do I update my address?", "order by date my statements", "exec summary annual report",
              "from 2019 to 2024 returns", "and/or conditions in loans", "alert('fraud') meaning", "<3 my bank",
              "Johnson & Johnson dividend", "Berkshire Hathaway class B", "cash-out refinance"]
FEEDBACK = ["The app keeps logging me out -- please fix it!", "Can't find the \"transfer\" button; where is it?",
            "I'd like to drop the overdraft protection and select the basic plan.",
            "Great service :) thanks to Ms. O'Connor at the Main St. branch.",
            "Why was my card declined at 3:45pm? Ref #A-2291 (amount: $1,200.00)",
            "Please update my e-mail; old one is /dev/null basically, it doesn't work.",
            "客服态度很好，但是转账到账太慢了（超过2小时）。", "建议增加夜间模式；另外密码规则太复杂了！",
            "我的信用卡账单显示“未知商户”扣款￥299.00，请核实。", "app闪退，版本号 5.2.1 (build 1034)，华为 Mate 60。",
            "Union members get a discount? Select one: yes/no.", "I or my wife will visit; is 1 = 1 appointment ok?",
            "Statement for Jan–Mar: total = 4,500; fee = 12.50; net = 4,487.50",
            "Use <b>bold</b> in the PDF? no, just plain text please.", "See https://example.com/help?id=42 for details.",
            "Meeting @ 10:00 -- bring ID & proof of address; 'originals' only."]
FILES = ["报表 2024(1).xlsx", "IMG_20240512_093011.jpg", "passport scan.pdf", "工资流水-3月.pdf", "contract_v2 final.docx",
         "bank statement (Jan).pdf", "身份证正面.png", "avatar.webp", "invoice#2291.pdf", "d'Angelo resume.pdf"]
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47",
    "Mozilla/5.0 (Linux; Android 14; 23013RK75C) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
]
LANGS = ["zh-CN,zh;q=0.9,en;q=0.8", "en-US,en;q=0.9", "zh-CN,zh;q=0.9", "en-GB,en;q=0.8,fr;q=0.5", "zh-TW,zh;q=0.9"]
STATIC = ["/static/js/app.3f9a1c.js", "/static/css/main.css", "/favicon.ico", "/static/img/logo@2x.png",
          "/assets/fonts/PingFang.woff2", "/static/js/vendor.chunk.js"]

# Template variants used only by the eval split (held out from training).
_EVAL_ONLY = {"memo_extra": ["房租 5月份", "Dinner @ Joe's (split 3 ways)", "Refund; order #88-1201", "学费/书本费",
                             "gift for mom <3", "rent -- May", "Payment for 'Project X' (phase 2)"]}


def _stdlib_sentences() -> list[str]:
    """English sentences: the first line of docstrings in a fixed set of Python standard-library modules."""
    import importlib
    import inspect

    out: set[str] = set()
    for mod_name in ("string", "textwrap", "calendar", "datetime", "decimal", "fractions", "statistics",
                     "collections", "email.message", "http.cookies", "csv", "json", "logging", "argparse",
                     "pathlib", "shutil", "tarfile", "zipfile", "gettext", "locale", "difflib", "smtplib"):
        mod = importlib.import_module(mod_name)
        for _, obj in inspect.getmembers(mod):
            doc = inspect.getdoc(obj) or ""
            first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
            if 20 <= len(first) <= 200 and not first.startswith((">>>", "Return", "str(")):
                out.add(first)
    return sorted(out)


def _jieba_words() -> list[str]:
    """Frequent Chinese words from jieba's dictionary (a dependency of fsbrain)."""
    import jieba

    words = []
    with open(Path(jieba.__file__).with_name("dict.txt"), encoding="utf-8") as f:
        for line in f:
            w, freq, _ = (line.split(" ") + ["", ""])[:3]
            if int(freq or 0) >= 2000 and all("\u4e00" <= ch <= "\u9fff" for ch in w):
                words.append(w)
    return words


_SENT: list[str] = []
_ZH_WORDS: list[str] = []


def _sentence(r: random.Random, split: str) -> str:
    pool = [s for s in _SENT if _held(s) == (split == "eval")]
    return r.choice(pool)


def _held(text: str) -> bool:
    import hashlib

    return hashlib.sha1(text.encode("utf-8")).digest()[0] % 10 < 3


def _zh_query(r: random.Random) -> str:
    sep = r.choice(["", " ", " ", "，"])
    return sep.join(r.choice(_ZH_WORDS) for _ in range(r.randint(1, 4)))


def _en_query(r: random.Random, split: str) -> str:
    words = [w.strip(".,;:()'\"").lower() for w in _sentence(r, split).split()]
    words = [w for w in words if w]
    k = r.randint(1, min(5, len(words)))
    i = r.randint(0, len(words) - k)
    return " ".join(words[i:i + k])


def _zh_name(r: random.Random) -> str:
    return r.choice(ZH_SURNAMES) + "".join(r.choice(ZH_GIVEN) for _ in range(r.randint(1, 2)))


def _en_name(r: random.Random) -> str:
    return f"{r.choice(EN_FIRST)} {r.choice(EN_LAST)}"


def _password(r: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~"
    return "".join(r.choice(alphabet) for _ in range(r.randint(8, 20)))


def _phone(r: random.Random) -> str:
    return r.choice(["13", "15", "18", "17"]) + "".join(r.choice(string.digits) for _ in range(9))


def _address(r: random.Random) -> str:
    if r.random() < 0.5:
        return f"{r.choice(ZH_CITIES)}{r.choice(ZH_ROADS)}{r.randint(1, 999)}号{r.randint(1, 30)}栋{r.randint(101, 2505)}室"
    return f"{r.randint(1, 9999)} {r.choice(EN_STREETS)}, Springfield, IL {r.randint(10000, 99999)}"


def _memo(r: random.Random, split: str) -> str:
    pool = FEEDBACK[:8] + ["工资", "房租", "还款", "AA制 聚餐", "lunch", "Invoice 2024-05", "for Mary's gift",
                           _zh_query(r), _en_query(r, split), _sentence(r, split)[:60]]
    if split == "eval":
        pool = pool + _EVAL_ONLY["memo_extra"]
    return r.choice(pool)


def _headers(r: random.Random, *, json_body: bool = False, form: bool = False) -> dict[str, str]:
    h = {"Host": "bank.example.com", "User-Agent": r.choice(UAS),
         "Accept": "application/json" if json_body else "text/html,application/xhtml+xml,*/*;q=0.8",
         "Accept-Language": r.choice(LANGS), "Accept-Encoding": "gzip, deflate, br",
         "Cookie": f"SESSIONID={uuid.UUID(int=r.getrandbits(128)).hex}; lang=zh_CN; _ga=GA1.2.{r.randint(10**8, 10**9)}.{r.randint(10**9, 2 * 10**9)}"}
    if json_body:
        h["Content-Type"] = "application/json"
    elif form:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if r.random() < 0.6:
        h["Referer"] = "https://bank.example.com/" + r.choice(["", "home", "account/overview", "search?q=help"])
    return h


def _req(method: str, uri: str, headers: dict[str, str], body: str = "") -> dict[str, object]:
    if body:
        headers["Content-Length"] = str(len(body.encode("utf-8")))
    return {"method": method, "uri": uri, "headers": headers, "body": body}


def make_request(r: random.Random, split: str) -> dict[str, object]:
    """One realistic benign request."""
    kind = r.choices(["search", "login", "transfer", "apply", "feedback", "api", "static", "page", "upload",
                      "api_get"], weights=[14, 8, 10, 8, 6, 16, 14, 12, 4, 8])[0]
    if kind == "search":
        q = r.choice([r.choice(ZH_QUERIES + EN_QUERIES), _zh_query(r), _en_query(r, split), _en_query(r, split)])
        return _req("GET", "/search?" + urlencode({"q": q, "page": r.randint(1, 5), "sort": r.choice(["relevance", "date"])}),
                    _headers(r))
    if kind == "login":
        form = {"username": r.choice([_phone(r), f"user{r.randint(1, 99999)}", _en_name(r).split()[0].lower()]),
                "password": _password(r), "captcha": "".join(r.choices(string.ascii_uppercase + string.digits, k=4)),
                "remember": r.choice(["on", "off"])}
        return _req("POST", "/login", _headers(r, form=True), urlencode(form))
    if kind == "transfer":
        form = {"from_account": "6222" + "".join(r.choices(string.digits, k=15)),
                "to_account": "6217" + "".join(r.choices(string.digits, k=15)),
                "payee": r.choice([_zh_name(r), _en_name(r)]), "amount": f"{r.uniform(1, 50000):.2f}",
                "currency": r.choice(["CNY", "USD", "HKD"]), "memo": _memo(r, split)}
        return _req("POST", "/transfer/submit", _headers(r, form=True), urlencode(form))
    if kind == "apply":
        form = {"name": r.choice([_zh_name(r), _en_name(r)]), "mobile": _phone(r), "address": _address(r),
                "email": f"{r.choice(EN_FIRST).lower()}.{r.randint(1, 999)}@{r.choice(['qq.com', '163.com', 'gmail.com', 'example.org'])}",
                "income": str(r.randint(3000, 80000)), "employer": r.choice(["阿里巴巴(中国)有限公司", "Smith & Sons Ltd.",
                                                                              "中国平安保险（集团）股份有限公司", "O'Reilly Media, Inc."]),
                "purpose": r.choice(["装修", "购车", "education", "home improvement / repairs", "消费"])}
        return _req("POST", "/loan/apply", _headers(r, form=True), urlencode(form))
    if kind == "feedback":
        form = {"subject": r.choice(["登录问题", "Card declined", "建议", "Statement question"]),
                "message": r.choice([" ".join(r.sample(FEEDBACK, r.randint(1, 3))), _sentence(r, split),
                                     _sentence(r, split) + " " + _zh_query(r)]), "contact": _phone(r)}
        return _req("POST", "/feedback", _headers(r, form=True), urlencode(form))
    if kind == "api":
        body = {"amount": round(r.uniform(1, 99999), 2), "currency": r.choice(["CNY", "USD"]),
                "payee": {"name": r.choice([_zh_name(r), _en_name(r)]), "account": "6222" + "".join(r.choices(string.digits, k=12)),
                          "bank": r.choice(["中国工商银行", "招商银行", "Bank of America", "HSBC (Hong Kong)"])},
                "memo": _memo(r, split), "client_ts": f"2024-0{r.randint(1, 9)}-1{r.randint(0, 9)}T10:{r.randint(10, 59)}:00+08:00",
                "device": {"os": r.choice(["iOS 17.4", "Android 14"]), "id": uuid.UUID(int=r.getrandbits(128)).hex},
                "tags": r.sample(["monthly", "family", "rent", "工资", "投资"], 2)}
        return _req("POST", r.choice(["/api/v1/payments", "/api/v2/transfer", "/api/v1/orders"]),
                    _headers(r, json_body=True), json.dumps(body, ensure_ascii=r.random() < 0.5))
    if kind == "static":
        return _req("GET", r.choice(STATIC) + (f"?v={r.randint(1, 999)}" if r.random() < 0.5 else ""), _headers(r))
    if kind == "page":
        path = r.choice(["/", "/account/overview", "/cards/credit", "/wealth/funds", "/help/faq", "/news/2024/05/rates",
                         "/zh-cn/个人业务/储蓄", "/products/mortgage", f"/news/{r.randint(2015, 2025)}/{r.randint(1, 12):02d}/"
                         + "-".join(_en_query(r, split).split()), f"/branch/{_zh_query(r)}", f"/u/{r.randint(1, 10**6)}/profile",
                         "/docs/" + r.choice(FILES)])
        return _req("GET", quote(path, safe="/"), _headers(r))
    if kind == "upload":
        b = "----WebKitFormBoundary" + "".join(r.choices(string.ascii_letters, k=16))
        fname = r.choice(FILES)
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"doc_type\"\r\n\r\n{r.choice(['id_card', 'income_proof'])}\r\n"
                f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n%PDF-1.4 binary-ish content {r.random()}\r\n--{b}--\r\n")
        h = _headers(r)
        h["Content-Type"] = f"multipart/form-data; boundary={b}"
        return _req("POST", "/upload", h, body)
    params = {"start": f"2024-0{r.randint(1, 9)}-01", "end": f"2024-0{r.randint(1, 9)}-28",
              "account": "6222****" + "".join(r.choices(string.digits, k=4)), "fields": "date,amount,payee,memo",
              "filter": r.choice(["amount>100", "type:debit", "payee:星巴克", "status=settled", "category in (food,travel)"]),
              "callback_url": "https://partner.example.com/notify?order=" + str(r.randint(1, 10**6))}
    return _req("GET", "/api/v1/transactions?" + urlencode(params), _headers(r, json_body=True))


# -- GENERATED shaped values: paths, document names, redirects, JSON and filter expressions in parameters ----------
# Train and eval use disjoint folder, file-name and key vocabularies (the eval lists are the second of each pair).
_SH_USERS = (["me", "alice", "bob", "zhangwei", "li.na", "wang_fang", "chen.jie", "j.smith", "mlopez", "finance01"],
             ["kate", "liuyang", "zhao.min", "tom.b", "ops2", "hr-team"])
_SH_UNIX_DIRS = (["Documents", "Downloads", "Desktop", "exports", "reports", "statements", "invoices", "scans",
                  "工资条", "对账单", "合同", "2024", "Q1", "archive", "shared", "clients", "tax"],
                 ["Pictures", "notes", "outgoing", "年报", "发票", "receipts", "audit", "2023"])
_SH_ROOTS = (["/home/{u}", "/Users/{U}", "/data/{d}", "/mnt/share/{d}", "/srv/files/{d}", "/uploads/{y}/{m:02d}",
              "/statements/{y}/{m:02d}", "~/{d}", "./{d}", "/sftp/partner{n}/outbox", "/nas/{d}"],
             ["/Volumes/USB/{d}", "/media/{u}/{d}", "/opt/bank-files/{d}", "/shared/{d}/{y}", "/exports"])
_SH_WIN_ROOTS = ([r"C:\Users\{U}\{D}", r"D:\{D}\{y}", r"C:\Users\{U}\OneDrive - Bank\{D}", r"C:\fakepath",
                  r"E:\{D}", r"C:\Users\{U}\Desktop", "C:/Users/{U}/{D}", r"Z:\财务\{y}"],
                 [r"H:\Shared\{D}", r"C:\Users\{U}\Downloads", r"F:\{D}\{y}-{m:02d}", "D:/{D}/{y}"])
_SH_WIN_DIRS = (["Documents", "Finance", "Reports", "财务报表", "Statements", "Invoices", "Scans", "客户资料"],
                ["Accounts", "月报", "Payroll", "Contracts"])
_SH_DOC_STEMS = (["statement", "对账单", "invoice", "payslip", "工资条", "contract", "loan_agreement", "tax return",
                  "receipt", "bank-statement", "Q3 report", "年度报告", "budget", "expenses", "id_card",
                  "营业执照", "report", "file", "scan", "export", "transactions", "流水", "申请表", "proof of address"],
                 ["summary", "月结单", "credit memo", "回单", "balance sheet", "notes", "agreement", "照片"])
_SH_DEFAULT_NAMES = (["New Text Document", "Untitled", "Book1", "Document1", "image", "download", "data", "output",
                      "Copy of budget", "新建 Microsoft Excel 工作表", "截图", "Screenshot 2024-05-12 at 09.30.11", "WeChat Image"],
                     ["untitled folder copy", "Presentation1", "photo", "新建文本文档", "Scan_0001"])
_SH_EXTS = (["pdf", "pdf", "xlsx", "xls", "csv", "docx", "doc", "png", "jpg", "jpeg", "zip", "txt", "ofx", "pptx",
             "json", "xml", "log", "heic"],
            ["PDF", "tsv", "rtf", "webp", "7z", "md", "odt", "qif"])
_SH_KEYS = (["status", "type", "currency", "category", "amount", "account", "channel", "payee", "page", "size",
             "sort", "order", "from", "to", "tags", "min", "max", "lang", "branch", "product", "region", "limit"],
            ["state", "kind", "merchant", "ccy", "offset", "direction", "since", "until", "segment"])
_SH_WORDS = (["open", "closed", "settled", "pending", "debit", "credit", "CNY", "USD", "web", "app", "food",
              "travel", "rent", "salary", "desc", "asc", "zh-CN", "上海", "工资", "退款", "monthly", "gold"],
             ["approved", "HKD", "EUR", "mobile", "refund", "北京", "utilities", "quarterly"])
_SH_PATH_PARAMS = (["path", "file", "filepath", "dir", "folder", "download", "doc", "document", "attachment",
                    "export_path", "save_as", "local_path", "filename", "name"],
                   ["target", "location", "archive", "source_file"])
_SH_NEXT_PARAMS = (["next", "returnUrl", "redirect", "continue", "back", "return_to"], ["goto", "successUrl"])
_SH_PAGES = (["/account/overview", "/cards/credit", "/wealth/funds/{n}", "/loan/apply/step/{s}", "/transfer/new",
              "/statements/{y}/{m:02d}", "/help/faq", "/zh-cn/个人业务/储蓄", "/settings/security", "/"],
             ["/messages/inbox", "/investments/portfolio", "/cards/debit/{n}", "/profile/edit"])
# Short paths: a home, user or working folder and a generic file name, at most one folder deep
# (``/home/<user>/<name>.<ext>``, ``~/<dir>/<name>.<ext>``). The shaped values above rarely come out this short
# (a root, 0-2 folders, a name with a suffix): about 18 of the 746 path values in the train split were under 20
# characters, so short paths were scored on a handful of n-grams that weigh towards "attack" (``ho``, ``le``,
# ``e.``) and ``/home/me/file.txt`` scored 0.70.
_SHORT_ROOTS = (["/home/{u}", "/home/{u}/{d}", "/Users/{U}", "/Users/{U}/{d}", "~", "~/{d}", ".", "./{d}", "/data",
                 "/mnt/{d}", "/nas/{d}", "/uploads", "/srv/files"],
                ["/media/{u}", "/Volumes/{d}", "/home/{u}/{d}", "~/{d}", "/shared", "/exports/{d}"])
_SHORT_USERS = (["me", "bob", "li", "wang", "ann", "sam", "dev", "user", "ops", "jo", "zhang", "max", "yu", "kim"],
                ["pat", "liu", "eve", "ian", "guest", "hu"])
_SHORT_DIRS = (["Downloads", "Documents", "Desktop", "docs", "files", "work", "projects", "in", "out", "share", "pics",
                "misc", "old", "new", "backup", "inbox"],
               ["Pictures", "notes", "Music", "stuff", "drafts", "mail"])
_SHORT_STEMS = (["file", "data", "test", "report", "doc", "list", "image", "photo", "scan", "info", "text", "draft",
                 "copy", "new", "result", "export", "input", "out", "a", "b", "x", "1", "2", "001", "files", "table",
                 "form", "notes", "readme", "upload", "download", "document", "profile", "filename", "my file",
                 "my_file", "file1", "file 2", "test1", "sample", "example", "temp", "log", "index", "main"],
                ["memo", "todo", "letter", "pic", "sheet", "item", "page", "record", "record2", "summary2"])
_SHORT_EXTS = (["txt", "pdf", "csv", "doc", "docx", "xls", "xlsx", "png", "jpg", "zip", "json", "xml", "md", "log",
                "dat", "tar.gz", "odt", "rtf", "gif", "mp4"],
               ["TXT", "jpeg", "tsv", "ods", "bmp", "mov"])


# What the attack shapes of the same kind are made of: never in a generated benign value.
_SHAPE_FORBIDDEN = ("..", "/etc/", "/proc/", "/bin", "/sbin", "/usr/", "/tmp/", "/var/", "/dev/", "/root",
                    "\\windows", "/windows", "system32", ".ini", ".conf", ".php", ".jsp", ".asp", ".sh", ".exe",
                    ".bat", ".ps1", ".py", "cmd", "$", "<", ";", "|", "`", "{{", "\\\\", "//", "passwd",
                    "shadow", "sleep", "select", "script", "eval", "exec", "http")


# Words that spell attack syntax in some language: never drawn for a generated path, key or file name.
_SH_STOPWORDS = frozenset("""select union insert update delete drop exec execute eval system script shell cmd sleep
    benchmark waitfor passwd shadow etc bin proc tmp var dev root alert iframe import include require cat wget curl
    chmod bash sh python perl php java class object runtime process having where declare cast char concat load
    exit echo print system32 windows win ini config env""".split())


def _sh(r: random.Random, pair: tuple[list, list], split: str):  # type: ignore[no-untyped-def]
    return r.choice(pair[1] if split == "eval" else pair[0])


def _sh_word(r: random.Random, split: str) -> str:
    """A common word: English from the split's docstring sentences, or (one in five) a jieba dictionary word."""
    if r.random() < 0.2:
        return r.choice(_ZH_WORDS)
    while True:
        w = r.choice(_sentence(r, split).split()).strip(".,;:()'\"`[]{}<>!?*=").lower()
        if w.isalpha() and w.isascii() and 2 <= len(w) <= 12 and w not in _SH_STOPWORDS \
                and not any(f in w for f in _SHAPE_FORBIDDEN):
            return w


def _sh_words(r: random.Random, split: str, sep: str | None = None) -> str:
    """One to three words joined as people name files and folders and programmers name keys."""
    words = [_sh_word(r, split) for _ in range(r.randint(1, 3))]
    sep = r.choice([" ", "_", "-", "", "camel"]) if sep is None else sep
    if sep == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return sep.join(words)


def _sh_fill(r: random.Random, template: str, split: str) -> str:
    return template.format(u=_sh(r, _SH_USERS, split), U=_sh(r, _SH_USERS, split).capitalize(),
                           d=_sh(r, _SH_UNIX_DIRS, split), D=_sh(r, _SH_WIN_DIRS, split),
                           y=r.randint(2018, 2025), m=r.randint(1, 12), n=r.randint(1, 999), s=r.randint(1, 5))


def _sh_dir(r: random.Random, split: str, pair: tuple[list, list]) -> str:
    return _sh(r, pair, split) if r.random() < 0.5 else _sh_words(r, split, r.choice([" ", "_", "-", ""]))


def _sh_docname(r: random.Random, split: str) -> str:
    roll = r.random()
    stem = _sh(r, _SH_DOC_STEMS, split) if roll < 0.4 else _sh(r, _SH_DEFAULT_NAMES, split) if roll < 0.55 \
        else _sh_words(r, split)
    tail = r.choice(["", f"_{r.randint(2018, 2025)}-{r.randint(1, 12):02d}", f" ({r.randint(1, 3)})", f" v{r.randint(1, 4)}",
                     f"-{r.randint(1000, 99999)}", "_final", " 终版", f"_{r.randint(2018, 2025)}{r.randint(1, 12):02d}"])
    return f"{stem}{tail}.{_sh(r, _SH_EXTS, split)}"


def _sh_unix_path(r: random.Random, split: str) -> str:
    parts = [_sh_fill(r, _sh(r, _SH_ROOTS, split), split)]
    parts += [_sh_dir(r, split, _SH_UNIX_DIRS) for _ in range(r.randint(0, 2))]
    return "/".join(parts + [_sh_docname(r, split)])


def _sh_win_path(r: random.Random, split: str) -> str:
    root = _sh_fill(r, _sh(r, _SH_WIN_ROOTS, split), split)
    sep = "/" if "/" in root else "\\"
    return sep.join([root] + [_sh_dir(r, split, _SH_WIN_DIRS) for _ in range(r.randint(0, 1))] + [_sh_docname(r, split)])


def _sh_scalar(r: random.Random, split: str):  # type: ignore[no-untyped-def]
    return r.choice([_sh(r, _SH_WORDS, split), _sh_words(r, split, " "), r.randint(0, 5000), r.randint(0, 9),
                     round(r.uniform(0, 99999), 2), True, False, None, f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
                     _zh_name(r)])


def _sh_key(r: random.Random, split: str) -> str:
    return _sh(r, _SH_KEYS, split) if r.random() < 0.5 else _sh_words(r, split, r.choice(["_", "camel", ""]))


def _sh_json(r: random.Random, split: str, depth: int = 0) -> str | dict | list:
    kind = r.random()
    if depth < 2 and kind < 0.25:
        return {_sh_key(r, split): _sh_json(r, split, depth + 1) for _ in range(r.randint(1, 3))}
    if depth < 2 and kind < 0.35:
        return [_sh_json(r, split, depth + 1) for _ in range(r.randint(1, 3))]
    return _sh_scalar(r, split)


def _sh_json_text(r: random.Random, split: str) -> str:
    doc = {_sh_key(r, split): _sh_json(r, split) for _ in range(r.randint(1, 4))}
    if r.random() < 0.15:
        doc = [doc]
    seps = r.choice([(",", ":"), (", ", ": ")])
    return json.dumps(doc, ensure_ascii=r.random() < 0.5, separators=seps)


def _sh_filter(r: random.Random, split: str) -> str:
    k, w = _sh(r, _SH_KEYS, split), _sh(r, _SH_WORDS, split)
    k2 = _sh(r, _SH_KEYS, split)
    lo = r.randint(0, 500)
    return r.choice([f"{k}=={w}", f"{k}=={w},{k2}=gt={lo}", f"{k}:{w}", f"{k2}:[{lo} TO {lo + r.randint(1, 9000)}]",
                     f"{k2}>={lo}", f"{k}:{w} {k2}:>{lo}", f"{k}.eq.{w}", f"{k} eq '{w}'",
                     f"{k2} ge {lo} and {k2} le {lo + 1000}", f"{k}=in=({w},{_sh(r, _SH_WORDS, split)})",
                     f"{k}[]={w}", f"-{k2}", f"{k2}:desc,{k}:asc", f"+{k}"])


def _sh_redirect(r: random.Random, split: str) -> str:
    page = _sh_fill(r, _sh(r, _SH_PAGES, split), split)
    q = r.choice(["", f"?tab={_sh(r, _SH_WORDS, split)}", f"?page={r.randint(1, 9)}&sort=date",
                  f"#{_sh(r, _SH_KEYS, split)}", f"?from={_sh(r, _SH_KEYS, split)}"])
    return page + q


def shape_value(r: random.Random, split: str) -> tuple[str, str]:
    """One GENERATED ``(kind, value)`` of the shapes above; values that happen to spell a ``_SHAPE_FORBIDDEN``
    marker (words joined into ``basevalue`` contain ``eval``) are drawn again."""
    while True:
        kind = r.choices(["unix", "win", "doc", "redirect", "json", "filter"], weights=[22, 18, 12, 14, 22, 12])[0]
        value = {"unix": _sh_unix_path, "win": _sh_win_path, "doc": _sh_docname, "redirect": _sh_redirect,
                 "json": _sh_json_text, "filter": _sh_filter}[kind](r, split)
        low = value.lower()
        if not any(f in low for f in _SHAPE_FORBIDDEN):
            return kind, value


def make_shape_request(r: random.Random, split: str) -> dict[str, object]:
    """One GENERATED benign request carrying one or two shaped values (see the module docstring)."""
    kind, value = shape_value(r, split)
    param = {"json": "filter", "filter": "filter", "redirect": _sh(r, _SH_NEXT_PARAMS, split)}.get(
        kind, _sh(r, _SH_PATH_PARAMS, split))
    if kind == "json":
        param = r.choice(["filter", "where", "query", "options", "sort", "fields", "meta", "data", "params", "q"])
    how = r.choices(["get", "form", "json", "upload"], weights=[55, 20, 15, 10])[0]
    if kind in ("unix", "win", "doc") and how == "upload":
        b = "----WebKitFormBoundary" + "".join(r.choices(string.ascii_letters, k=16))
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"doc_type\"\r\n\r\n{r.choice(['statement', 'id_card', 'invoice'])}\r\n"
                f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{value}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n%PDF-1.4 binary-ish content {r.random()}\r\n--{b}--\r\n")
        h = _headers(r)
        h["Content-Type"] = f"multipart/form-data; boundary={b}"
        return _req("POST", r.choice(["/upload", "/api/v1/documents"]), h, body)
    extra: dict[str, object] = {}
    if r.random() < 0.4:
        k2, v2 = shape_value(r, split)
        extra[{"json": "sort" if k2 != kind else "fields", "redirect": "next"}.get(k2, "filename")] = v2
    if how == "json":
        doc = {param: value, **extra, "client": r.choice(["web", "ios", "android"])}
        return _req("POST", r.choice(["/api/v1/exports", "/api/v1/documents/search", "/api/v2/files"]),
                    _headers(r, json_body=True), json.dumps(doc, ensure_ascii=r.random() < 0.5))
    args = {param: value, **extra, r.choice(["page", "lang", "view"]): r.choice(["1", "2", "zh-CN", "list"])}
    if how == "form":
        return _req("POST", r.choice(["/documents/save", "/settings/export", "/api/v1/reports", "/login"]),
                    _headers(r, form=True), urlencode(args))
    path = r.choice(["/documents/download", "/api/v1/files", "/api/v1/transactions", "/export", "/login",
                     "/search", "/preview", "/api/v2/statements"])
    return _req("GET", path + "?" + urlencode(args), _headers(r))


def _short_path(r: random.Random, split: str) -> str:
    root = _sh(r, _SHORT_ROOTS, split).format(u=_sh(r, _SHORT_USERS, split), U=_sh(r, _SHORT_USERS, split).capitalize(),
                                             d=_sh(r, _SHORT_DIRS, split))
    roll = r.random()
    stem = _sh(r, _SHORT_STEMS, split) if roll < 0.6 else _sh_word(r, split) if roll < 0.85 \
        else r.choice(string.ascii_lowercase + string.digits)
    return f"{root}/{stem}.{_sh(r, _SHORT_EXTS, split)}"


def short_path_value(r: random.Random, split: str) -> str:
    """One GENERATED short path (see ``_SHORT_ROOTS``); never one that spells a ``_SHAPE_FORBIDDEN`` marker."""
    while True:
        value = _short_path(r, split)
        if not any(f in value.lower() for f in _SHAPE_FORBIDDEN):
            return value


def make_short_path_request(r: random.Random, split: str) -> dict[str, object]:
    """One GENERATED benign request carrying a short path in a query, form, JSON or multipart value."""
    value = short_path_value(r, split)
    param = _sh(r, _SH_PATH_PARAMS, split)
    how = r.choices(["get", "form", "json", "upload", "memo"], weights=[50, 15, 15, 10, 10])[0]
    if how == "upload":
        b = "----WebKitFormBoundary" + "".join(r.choices(string.ascii_letters, k=16))
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{value}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\nbinary-ish content {r.random()}\r\n--{b}--\r\n")
        h = _headers(r)
        h["Content-Type"] = f"multipart/form-data; boundary={b}"
        return _req("POST", r.choice(["/upload", "/api/v1/documents"]), h, body)
    if how == "memo":  # a path mentioned in a sentence, as users write them in support messages
        param = r.choice(["message", "comment", "description"])
        value = r.choice([f"I saved it to {value}", f"{value} cannot be uploaded", f"see {value}",
                          f"文件在 {value}", f"上传 {value} 失败", f"{value} (attached)"])
    args = {param: value, r.choice(["page", "lang", "view"]): r.choice(["1", "2", "zh-CN", "list"])}
    if how == "json":
        return _req("POST", r.choice(["/api/v1/exports", "/api/v1/documents", "/api/v2/support/tickets"]),
                    _headers(r, json_body=True), json.dumps(args, ensure_ascii=r.random() < 0.5))
    if how in ("form", "memo"):
        return _req("POST", r.choice(["/documents/save", "/support/message", "/api/v1/reports"]),
                    _headers(r, form=True), urlencode(args))
    path = r.choice(["/documents/download", "/api/v1/files", "/preview", "/export", "/search"])
    return _req("GET", path + "?" + urlencode(args), _headers(r))


def _load_vocabulary() -> None:
    """Fill the sentence and Chinese word lists the generators draw from (once)."""
    if not _SENT:
        _SENT.extend(_stdlib_sentences())
        _ZH_WORDS.extend(_jieba_words())


def _generate(make: Callable[[random.Random, str], dict[str, object]], seeds: dict[str, int], split: str,
              n: int) -> list[dict[str, object]]:
    """``n`` requests from ``make`` for ``split``, deterministic: each generator has a seed of its own per split."""
    _load_vocabulary()
    r = random.Random(seeds[split])
    return [make(r, split) for _ in range(n)]


def build_short_paths(split: str, n: int) -> list[dict[str, object]]:
    """``n`` GENERATED short-path requests for ``split``, deterministic (a seed of their own)."""
    return _generate(make_short_path_request, {"train": 20261208, "eval": 81207}, split, n)


# JSON-Schema / OpenAPI documents (GENERATED): API clients send JSON documents that carry a schema reference
# (``{"$schema": "https://json-schema.org/draft/2020-12/schema", ...}``) or are schemas (``$id``, ``$ref``,
# ``$defs``, ``$comment``, ``$anchor``, ``definitions``, OpenAPI ``components``). A ``$`` key was attack syntax
# to the model (NoSQL operators, ``${jndi:``, ``$(cmd)``: the benign data had no ``$`` key at all) and
# ``$schema`` scored 0.79 (PL2 blocks at 0.7). The only ``$`` these documents hold is a JSON-Schema keyword
# (``_SCHEMA_KEYWORDS``); the only URLs are schema identifiers on json-schema.org, spec.openapis.org,
# json.schemastore.org and the bank's own host (``_SCHEMA_URLS``); ``schema_clean`` removes both and the rest of a
# value must pass ``_SHAPE_FORBIDDEN`` (no NoSQL operator key, no ``${``, no ``..``, ...).
SCHEMA_TRAIN = 300  # GENERATED schema requests appended to the train split after the short paths
SCHEMA_EVAL = 60  # and appended to benign_shapes_eval
_SCHEMA_KEYWORDS = ("$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
                    "$vocabulary")
_SCHEMA_DRAFTS = ["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
                  "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
                  "http://json-schema.org/draft-06/schema#", "http://json-schema.org/draft-04/schema#",
                  "https://spec.openapis.org/oas/3.1/dialect/base"]
_SCHEMA_VOCABS = ["https://json-schema.org/draft/2020-12/vocab/core",
                  "https://json-schema.org/draft/2020-12/vocab/applicator",
                  "https://json-schema.org/draft/2020-12/vocab/validation",
                  "https://json-schema.org/draft/2020-12/vocab/format-annotation"]
_SCHEMA_STORE = ["https://json.schemastore.org/package.json", "https://json.schemastore.org/tsconfig.json",
                 "https://json.schemastore.org/github-workflow.json", "https://json.schemastore.org/prettierrc"]
_SCHEMA_HOSTS = ("https://bank.example.com/schemas/", "https://api.bank.example.com/schemas/")
_SCHEMA_URLS = tuple(sorted(set(_SCHEMA_DRAFTS + _SCHEMA_VOCABS + _SCHEMA_STORE) | set(_SCHEMA_HOSTS),
                            key=len, reverse=True))
_SCHEMA_NAMES = (["Account", "Address", "Payee", "TransferRequest", "Money", "Customer", "Card", "LoanApplication",
                  "Statement", "Transaction", "Error", "Pagination", "Branch", "Beneficiary", "PhoneNumber"],
                 ["Invoice", "Merchant", "Refund", "ExchangeRate", "Portfolio", "Mandate"])
_SCHEMA_TYPES = ["string", "number", "integer", "boolean", "object", "array", "null"]
_SCHEMA_FORMATS = ["date", "date-time", "email", "uuid", "uri", "iban", "currency", "int64", "decimal"]


def schema_clean(value: str) -> str:
    """``value`` without its JSON-Schema keywords and schema URLs (what is left must pass ``_SHAPE_FORBIDDEN``)."""
    for url in _SCHEMA_URLS:
        value = value.replace(url, " ")
    for kw in sorted(_SCHEMA_KEYWORDS, key=len, reverse=True):
        value = value.replace(kw, " ")
    return value


def _schema_text(r: random.Random, split: str, n: int) -> str:
    """A docstring sentence of plain words (no brackets or operators: a description, not code), cut to ``n``."""
    while True:
        text = _sentence(r, split)[:n].strip()
        if text and all(c.isalnum() or c in " ,.-" for c in text):
            return text


def _schema_name(r: random.Random, split: str) -> str:
    return _sh(r, _SCHEMA_NAMES, split) if r.random() < 0.6 else _sh_words(r, split, "camel").capitalize()


def _schema_ref(r: random.Random, split: str) -> str:
    name = _schema_name(r, split)
    return r.choice([f"#/$defs/{name}", f"#/definitions/{name}", f"#/components/schemas/{name}",
                     f"{name.lower()}.json", f"./{name.lower()}.schema.json", f"{r.choice(_SCHEMA_HOSTS)}{name.lower()}.json",
                     f"{r.choice(_SCHEMA_HOSTS)}common.json#/$defs/{name}", f"#{name.lower()}"])


def _schema_property(r: random.Random, split: str, depth: int = 0) -> dict[str, object]:
    roll = r.random()
    if roll < 0.3:
        return {"$ref": _schema_ref(r, split)}
    prop: dict[str, object] = {"type": r.choice(_SCHEMA_TYPES[:4])}
    if r.random() < 0.3:
        prop["format"] = r.choice(_SCHEMA_FORMATS)
    if r.random() < 0.3:
        prop["description"] = _schema_text(r, split, 80)
    if r.random() < 0.2:
        prop["$comment"] = _schema_text(r, split, 60)
    if r.random() < 0.2:
        prop["enum"] = [_sh(r, _SH_WORDS, split) for _ in range(r.randint(2, 4))]
    if depth < 1 and r.random() < 0.2:
        prop = {"type": "object", "properties": {_sh_key(r, split): _schema_property(r, split, depth + 1)
                                                 for _ in range(r.randint(1, 3))}}
    if depth < 1 and r.random() < 0.15:
        prop = {"type": "array", "items": _schema_property(r, split, depth + 1)}
    return prop


def _schema_document(r: random.Random, split: str) -> dict[str, object]:
    """A JSON Schema, an OpenAPI fragment or a data document that names its schema."""
    kind = r.choices(["schema", "openapi", "data"], weights=[50, 15, 35])[0]
    name = _schema_name(r, split)
    if kind == "data":  # a document validated against a schema it names, as editors and config files do
        doc: dict[str, object] = {"$schema": r.choice(_SCHEMA_STORE + [f"{r.choice(_SCHEMA_HOSTS)}{name.lower()}.json"]
                                                      + _SCHEMA_DRAFTS[:2])}
        for _ in range(r.randint(1, 4)):
            doc[_sh_key(r, split)] = _sh_json(r, split)
        if r.random() < 0.2:
            doc["$comment"] = _schema_text(r, split, 60)
        return doc
    props = {_sh_key(r, split): _schema_property(r, split) for _ in range(r.randint(1, 5))}
    schema: dict[str, object] = {"type": "object", "properties": props}
    if r.random() < 0.5:
        schema["required"] = sorted(props)[:r.randint(1, len(props))]
    if kind == "openapi":
        return {"openapi": r.choice(["3.0.3", "3.1.0"]), "info": {"title": f"{name} API", "version": f"1.{r.randint(0, 9)}.0"},
                "paths": {f"/{name.lower()}s/{{id}}": {"get": {"responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}}}}},
                "components": {"schemas": {name: schema}}}
    doc = {"$schema": r.choice(_SCHEMA_DRAFTS)}
    if r.random() < 0.6:
        doc["$id"] = r.choice([f"{r.choice(_SCHEMA_HOSTS)}{name.lower()}.json", f"urn:uuid:{uuid.UUID(int=r.getrandbits(128))}",
                               f"/schemas/{name.lower()}", f"{name.lower()}.schema.json"])
    if r.random() < 0.25:
        doc["$comment"] = _schema_text(r, split, 80)
    if r.random() < 0.15:
        doc["$anchor"] = name.lower()
    if r.random() < 0.1:
        doc["$vocabulary"] = {v: True for v in r.sample(_SCHEMA_VOCABS, r.randint(1, 3))}
    if r.random() < 0.1:
        doc["$dynamicAnchor"] = "meta"
    doc["title"] = name
    doc.update(schema)
    if r.random() < 0.5:
        defs_key = "$defs" if doc["$schema"].startswith("https://json-schema.org/draft/20") else r.choice(["$defs", "definitions"])
        doc[defs_key] = {_schema_name(r, split): _schema_property(r, split) for _ in range(r.randint(1, 3))}
        if r.random() < 0.2:
            doc["items"] = {"$dynamicRef": "#meta"}
    return doc


def schema_value(r: random.Random, split: str) -> dict[str, object]:
    """One GENERATED JSON-Schema / OpenAPI document whose values and keys pass ``schema_clean`` +
    ``_SHAPE_FORBIDDEN``; drawn again otherwise."""
    while True:
        doc = _schema_document(r, split)
        text = schema_clean(json.dumps(doc, ensure_ascii=False)).lower()
        if not any(f in text for f in _SHAPE_FORBIDDEN):
            return doc


def make_schema_request(r: random.Random, split: str) -> dict[str, object]:
    """One GENERATED benign request carrying a JSON-Schema / OpenAPI document: mostly a JSON body, sometimes
    a JSON value of a query or form parameter (``schema={...}``)."""
    doc = schema_value(r, split)
    how = r.choices(["json", "wrapped", "get", "form"], weights=[60, 15, 15, 10])[0]
    if how == "json":
        return _req(r.choice(["POST", "PUT"]), r.choice(["/api/v1/schemas", "/api/v1/forms/definitions", "/api/v1/validate",
                                                       "/api/v2/products/config", "/api/v1/reports/templates",
                                                       "/api/v1/documents"]),
                    _headers(r, json_body=True), json.dumps(doc, ensure_ascii=r.random() < 0.5))
    if how == "wrapped":  # a schema inside a larger request
        body = {"name": _sh_words(r, split, "_"), "schema": doc, "version": r.randint(1, 9)}
        return _req("POST", r.choice(["/api/v1/forms", "/api/v1/webhooks/config", "/api/v1/imports/mappings"]),
                    _headers(r, json_body=True), json.dumps(body, ensure_ascii=r.random() < 0.5))
    text = json.dumps(doc, ensure_ascii=r.random() < 0.5, separators=r.choice([(",", ":"), (", ", ": ")]))
    args = {r.choice(["schema", "definition", "spec", "template"]): text, r.choice(["page", "lang", "view"]): "1"}
    if how == "form":
        return _req("POST", r.choice(["/settings/forms/save", "/api/v1/reports"]), _headers(r, form=True), urlencode(args))
    return _req("GET", r.choice(["/api/v1/validate", "/tools/schema/preview"]) + "?" + urlencode(args), _headers(r))


def build_schemas(split: str, n: int) -> list[dict[str, object]]:
    """``n`` GENERATED JSON-Schema / OpenAPI requests for ``split``, deterministic (a seed of their own)."""
    return _generate(make_schema_request, {"train": 20261209, "eval": 91208}, split, n)


def build_shapes(split: str, n: int) -> list[dict[str, object]]:
    """``n`` GENERATED shaped requests for ``split``, deterministic (a seed of their own)."""
    return _generate(make_shape_request, {"train": 20261207, "eval": 71206}, split, n)


def build(split: str, n: int) -> list[dict[str, object]]:
    """``n`` requests for ``split`` (``train`` or ``eval``), deterministic."""
    return _generate(make_request, {"train": 20240501, "eval": 99173}, split, n)


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    _load_vocabulary()
    for name, n, reqs in (("train", BASE_TRAIN + SHAPES_TRAIN + SHORT_TRAIN + SCHEMA_TRAIN,
                           lambda: build("train", BASE_TRAIN) + build_shapes("train", SHAPES_TRAIN)
                           + build_short_paths("train", SHORT_TRAIN) + build_schemas("train", SCHEMA_TRAIN)),
                          ("eval", 3000, lambda: build("eval", 3000)),
                          ("shapes_eval", SHAPES_EVAL + SHORT_EVAL + SCHEMA_EVAL,
                           lambda: build_shapes("eval", SHAPES_EVAL) + build_short_paths("eval", SHORT_EVAL)
                           + build_schemas("eval", SCHEMA_EVAL))):
        path = OUT / f"benign_{name}.jsonl.gz"
        lines = "".join(json.dumps(req, ensure_ascii=False) + "\n" for req in reqs())
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(lines.encode("utf-8"))
        print(f"wrote {path} ({n} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
