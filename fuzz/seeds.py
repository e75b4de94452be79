#!/usr/bin/env python3
"""Write the seed corpus of the upstream_reply and proxy_header fuzz targets.

Real shapes of what name servers and balancers send: referrals with glue, CNAME and
DNAME chains, negative answers with their SOA, NSEC and RRSIG records, a wildcard
answer, a lame referral, a large NS set; PROXY v2 headers for IPv4, IPv6 and LOCAL.
Run from the repository root: python3 fuzz/seeds.py (needs dnspython: pip install
dnspython). The files are committed; this script is only for making them again.
"""
import os
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

SIG = "{t} 15 {labels} 300 20300101000000 20260101000000 12345 {signer} AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="


def reply(qname, qtype, aa=True, rcode=0):
    q = dns.message.make_query(qname, qtype, want_dnssec=True)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA if aa else 0
    if not aa:
        r.flags &= ~dns.flags.AA
    r.set_rcode(rcode)
    return r


def add(section, name, ttl, rdtype, *rdatas):
    section.append(dns.rrset.from_text(name, ttl, "IN", rdtype, *rdatas))


def sig(t, labels, signer):
    return SIG.format(t=t, labels=labels, signer=signer)


def upstream():
    out = {}
    # The root refers www.example.test. to test.
    r = reply("www.example.test.", "A", aa=False)
    add(r.authority, "test.", 172800, "NS", "ns1.nic.test.", "ns2.nic.test.")
    add(r.authority, "test.", 86400, "DS", "12345 15 2 " + "AB" * 32)
    add(r.authority, "test.", 86400, "RRSIG", sig("DS", 1, "."))
    add(r.additional, "ns1.nic.test.", 172800, "A", "192.0.2.1")
    add(r.additional, "ns1.nic.test.", 172800, "AAAA", "2001:db8::1")
    add(r.additional, "ns2.nic.test.", 172800, "A", "192.0.2.2")
    out["referral-root"] = (0x80, r)
    # test. refers to example.test. (zone: the question's top label).
    r = reply("www.example.test.", "A", aa=False)
    add(r.authority, "example.test.", 3600, "NS", "ns1.example.test.", "ns.other.example.")
    add(r.authority, "example.test.", 3600, "NSEC", "f.test. NS RRSIG NSEC")
    add(r.additional, "ns1.example.test.", 3600, "A", "192.0.2.10")
    add(r.additional, "ns.other.example.", 3600, "A", "192.0.2.99")
    out["referral-tld"] = (0x01, r)
    # A CNAME chain inside the zone to an A RRset, signed.
    r = reply("www.example.test.", "A")
    add(r.answer, "www.example.test.", 300, "CNAME", "a.example.test.")
    add(r.answer, "www.example.test.", 300, "RRSIG", sig("CNAME", 3, "example.test."))
    add(r.answer, "a.example.test.", 300, "CNAME", "b.example.test.")
    add(r.answer, "b.example.test.", 300, "A", "192.0.2.1", "192.0.2.2")
    add(r.answer, "b.example.test.", 300, "RRSIG", sig("A", 3, "example.test."))
    out["cname-chain"] = (0x82, r)
    # A CNAME out of the zone: an alias to follow.
    r = reply("www.example.test.", "AAAA")
    add(r.answer, "www.example.test.", 300, "CNAME", "cdn.example.net.")
    add(r.answer, "cdn.example.net.", 300, "AAAA", "2001:db8::5")
    out["cname-out"] = (0x02, r)
    # A DNAME and the CNAME it implies.
    r = reply("x.old.example.test.", "A")
    add(r.answer, "old.example.test.", 300, "DNAME", "new.example.test.")
    add(r.answer, "x.old.example.test.", 300, "CNAME", "x.new.example.test.")
    add(r.answer, "x.new.example.test.", 300, "A", "192.0.2.7")
    out["dname"] = (0x02, r)
    # NXDOMAIN with SOA, NSEC proofs and signatures.
    r = reply("nothere.example.test.", "A", rcode=dns.rcode.NXDOMAIN)
    add(r.authority, "example.test.", 300, "SOA", "ns1.example.test. h.example.test. 1 3600 600 86400 300")
    add(r.authority, "example.test.", 300, "RRSIG", sig("SOA", 2, "example.test."))
    add(r.authority, "mail.example.test.", 300, "NSEC", "www.example.test. A RRSIG NSEC")
    add(r.authority, "mail.example.test.", 300, "RRSIG", sig("NSEC", 3, "example.test."))
    add(r.authority, "example.test.", 300, "NSEC", "a.example.test. NS SOA RRSIG NSEC DNSKEY")
    add(r.authority, "example.test.", 300, "RRSIG", sig("NSEC", 2, "example.test."))
    out["nxdomain-nsec"] = (0x82, r)
    # NODATA with SOA.
    r = reply("www.example.test.", "TXT")
    add(r.authority, "example.test.", 300, "SOA", "ns1.example.test. h.example.test. 1 3600 600 86400 60")
    out["nodata"] = (0x02, r)
    # An answer expanded from a wildcard, with its NSEC.
    r = reply("any.wild.example.test.", "A")
    add(r.answer, "any.wild.example.test.", 300, "A", "192.0.2.42")
    add(r.answer, "any.wild.example.test.", 300, "RRSIG", sig("A", 3, "example.test."))
    add(r.authority, "*.wild.example.test.", 300, "NSEC", "x.example.test. A RRSIG NSEC")
    add(r.authority, "*.wild.example.test.", 300, "RRSIG", sig("NSEC", 4, "example.test."))
    out["wildcard"] = (0x82, r)
    # A lame server: a referral up to the root.
    r = reply("www.example.test.", "A", aa=False)
    add(r.authority, ".", 518400, "NS", "a.root-servers.net.")
    out["lame-upward"] = (0x02, r)
    # A large NS set with glue for each.
    r = reply("www.big.test.", "A", aa=False)
    add(r.authority, "big.test.", 300, "NS", *[f"ns{i}.big.test." for i in range(40)])
    for i in range(40):
        add(r.additional, f"ns{i}.big.test.", 300, "A", f"10.0.0.{i}")
    out["referral-40-ns"] = (0x01, r)
    # SERVFAIL, and an answer with duplicates and a record of another type.
    out["servfail"] = (0x00, reply("www.example.test.", "A", rcode=dns.rcode.SERVFAIL))
    r = reply("www.example.test.", "A")
    add(r.answer, "www.example.test.", 300, "A", "192.0.2.1")
    r.answer.append(dns.rrset.from_text("www.example.test.", 300, "IN", "A", "192.0.2.1"))
    add(r.answer, "www.example.test.", 300, "TXT", '"x"')
    out["duplicates"] = (0x02, r)
    return {k: bytes([p]) + m.to_wire(max_size=65535) for k, (p, m) in out.items()}


def proxy():
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    query = dns.message.make_query("www.example.test.", "A").to_wire()
    v4 = sig + bytes([0x21, 0x12]) + struct.pack("!H", 12) + bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack("!HH", 40000, 53)
    v6 = sig + bytes([0x21, 0x22]) + struct.pack("!H", 36) + bytes(15) + b"\x07" + bytes(15) + b"\x01" + struct.pack("!HH", 40000, 53)
    local = sig + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    tlv = sig + bytes([0x21, 0x11]) + struct.pack("!H", 12 + 7) + bytes([192, 0, 2, 8, 127, 0, 0, 1]) + struct.pack("!HH", 5353, 53) + b"\x04\x00\x04abcd"
    return {"v4-udp": v4 + query, "v6-udp": v6 + query, "local": local + query, "v4-tcp-tlv": tlv, "short": v4[:20]}


for target, seeds in (("upstream_reply", upstream()), ("proxy_header", proxy())):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds")
