//! A wildcard listener (`0.0.0.0`, `::`) on a host with several addresses answers
//! each query from the address it was sent to. Run in a throw-away network (and user)
//! namespace whose loopback gets a second IPv6 address: nothing outside sees it.

use std::process::Command;

use crate::common::*;

#[test]
fn answers_leave_from_the_address_the_query_was_sent_to() {
    let dir = tempfile::tempdir().unwrap();
    let lists = lists_toml(dir.path());
    let cfg = format!(
        "[server]\nlisten = [\"0.0.0.0:5391\", \"[::]:5391\"]\nstate_dir = \"state\"\n\
         acl = [\"127.0.0.0/8\", \"::1/128\", \"fd00::/8\"]\n[ops]\nlisten = \"127.0.0.1:0\"\n\
         [warnpage]\nlisten = []\n{lists}\
         [resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n"
    );
    std::fs::write(dir.path().join("fanzha.toml"), cfg).unwrap();
    // Inside the namespace: bring loopback up, add a second IPv6 address, start
    // fanzha, then ask from an unconnected socket (which accepts a reply from any
    // address) and print where each answer came from. A blocked name is answered in
    // the receive loop, one that fails upstream from a resolution task.
    let client = r#"
import socket, struct, sys, time
def query(name, qid):
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for l in name.split('.'):
        q += bytes([len(l)]) + l.encode()
    return q + b'\0' + struct.pack('>HH', 1, 1)
for attempt in range(100):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
        s.sendto(query('blocked.example.test', 1), ('127.0.0.1', 5391)); s.recvfrom(512)
        break
    except OSError:
        time.sleep(0.1)
for fam, dst in [(socket.AF_INET, '127.0.0.1'), (socket.AF_INET, '127.0.0.7'),
                 (socket.AF_INET6, '::1'), (socket.AF_INET6, 'fd00::7')]:
    for name in ['blocked.example.test', 'fails.upstream.test']:
        s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5)
        s.sendto(query(name, 7), (dst, 5391))
        data, src = s.recvfrom(4096)
        print(dst, name, src[0], data[3] & 15)
"#;
    let script = format!(
        "set -e; ip link set lo up; ip -6 addr add fd00::7/128 dev lo; \
         cd '{}'; '{}' serve --config fanzha.toml 2>fanzha.log & \
         python3 -c \"$CLIENT\"; kill %1",
        dir.path().display(),
        bin().display()
    );
    let out = Command::new("unshare")
        .args(["-Urn", "bash", "-c", &script])
        .env("CLIENT", client)
        .output()
        .expect("unshare (util-linux) runs the test in a throw-away network namespace");
    let text = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("fanzha.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the namespace run failed: {}\n{text}\nfanzha log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}\n{log}");
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[0], f[2], "an answer to {} came from {}: {l}", f[0], f[2]);
    }
}
