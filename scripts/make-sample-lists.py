#!/usr/bin/env python3
"""Rebuild the sample lists in blocklists/ from the public lists in ../shared/data.

Picks entries by keyword per fraud category, drops any entry that would block a host
of the CrUX top-100k (exactly or as a parent) and any bare registrable platform name,
and writes one file per category with a category header. Deterministic (sorted input).
Usage: scripts/make-sample-lists.py [SHARED_DATA_DIR]   (default ../shared/data)
"""
import re, sys, pathlib

data = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
out = pathlib.Path(__file__).resolve().parent.parent / "blocklists"
bl = data / "blocklists"

def names(path):
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if line and not line.startswith(("!", ";")):
            yield line.split()[-1].lower().rstrip(".")

src = {
    "gaso": sorted(set(names(bl / "gaso-scam.domains.txt"))),
    "blp-scam": sorted(set(names(bl / "blocklistproject-scam.domains.txt"))),
    "blp-phishing": sorted(set(names(bl / "blocklistproject-phishing.domains.txt"))),
}
popular = set()
for line in open(data / "popular" / "crux-202607-top100k-origins.csv", encoding="utf-8"):
    host = re.sub(r"^https?://", "", line.split(",")[0]).split(":")[0]
    popular.add(host)
popular_parents = set()
for h in popular:
    parts = h.split(".")
    for i in range(len(parts)):
        popular_parents.add(".".join(parts[i:]))

cats = [
    ("loan", "网络贷款 fake loans", r"loan|credit|daikuan|kuaidai|cashadvance|payday|貸|贷"),
    ("task-scam", "刷单返利 task / click-farming", r"task|parttime|part-time|shuadan|lalamove|dianshang|taskjob|order-|jobs?-|物流|宅配"),
    ("investment", "杀猪盘 investment romance", r"invest|okex|bitmart|mexc|trade|trading|coinex|crypto|bitcoin|btc|usdt|forex|huobi|binance|fund"),
    ("impersonation", "冒充公检法 impersonating police / officials", r"police|gov-|court|customs|taxrefund|tax-|irs-|interpol|ministry|procurat|公安"),
    ("impersonation-boss", "冒充领导 impersonating a boss", r"ceo-|boss|director|chairman|executive|hr-dept|office365-ceo"),
    ("fake-service", "冒充客服 fake customer service", r"support|service|helpdesk|refund|kefu|customer|careline|hotline"),
    ("phishing", "钓鱼网站 phishing", r"login|signin|verify|secure-|account(?!ing|ant)|banking|wallet-connect|webmail"),
]
used = set()
for cat, title, pat in cats:
    rx = re.compile(pat)
    picked = []
    for srcname in ("gaso", "blp-scam", "blp-phishing"):
        for n in src[srcname]:
            if len(picked) >= 40:
                break
            if n in used or not rx.search(n) or n in popular_parents:
                continue
            if n.count(".") < 1 or "/" in n:
                continue
            picked.append((n, srcname))
            used.add(n)
    with open(out / f"{cat}.txt", "w", encoding="utf-8") as f:
        f.write(f"# {title}\n# category: {cat}\n")
        f.write("# Sample list built by scripts/make-sample-lists.py from public lists;\n")
        f.write("# sources and licences: blocklists/SOURCES.md\n")
        for n, s in picked:
            f.write(f"{n}\n")
    print(cat, len(picked))
