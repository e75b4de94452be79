//! A real nginx (Debian's nginx-light, installed by scripts/test.sh) serving a
//! directory over HTTPS on 127.0.0.1 (or as a web site, plain and HTTPS, on a
//! loopback address of its own), with a certificate from a test CA.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    child: Child,
    pub port: u16,
    /// The test CA's certificate (PEM), for `tls_ca`.
    pub ca_pem: PathBuf,
    dir: PathBuf,
}

/// A test CA and a certificate for 127.0.0.1 signed by it: (CA PEM, cert PEM, key PEM).
pub fn test_ca() -> (String, String, String) {
    test_ca_for(&["127.0.0.1"])
}

/// A new CA, and a certificate for `names` (host names, wildcards, addresses)
/// signed by it, with its key: (CA, certificate, key), PEM.
pub fn test_ca_for(names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: a leaf named as its issuer looks self-signed to OpenSSL
    // (curl, dig).
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fanzha test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = rcgen::CertificateParams::new(names.clone()).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, names[0].as_str());
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Serve `root` over HTTPS; its files (and their ETags) as nginx serves them.
    pub fn start(root: &Path, work: &Path) -> Nginx {
        std::fs::create_dir_all(work).unwrap();
        let (ca, cert, key) = test_ca();
        for attempt in 0..5 {
            let port = free_port();
            let listen = format!("listen 127.0.0.1:{port} ssl;");
            match Self::launch(
                root,
                work,
                &listen,
                (&ca, &cert, &key),
                (Ipv4Addr::LOCALHOST, port),
            ) {
                Some(child) => {
                    return Nginx {
                        child,
                        port,
                        ca_pem: work.join("ca.pem"),
                        dir: work.to_path_buf(),
                    };
                }
                None => eprintln!("nginx attempt {attempt} failed"),
            }
        }
        panic!("nginx did not start");
    }

    /// Serve `root` as the site `names`, over plain HTTP on `ip`:`http_port` and
    /// over HTTPS on `ip`:`tls_port`, with a certificate from a CA of its own
    /// (`ca_pem`).
    pub fn site(
        root: &Path,
        work: &Path,
        ip: Ipv4Addr,
        ports: (u16, u16),
        names: &[&str],
    ) -> Nginx {
        std::fs::create_dir_all(work).unwrap();
        let (ca, cert, key) = test_ca_for(names);
        let listen = format!(
            "listen {ip}:{} ;\n    listen {ip}:{} ssl;",
            ports.0, ports.1
        );
        let child = Self::launch(root, work, &listen, (&ca, &cert, &key), (ip, ports.0))
            .expect("nginx serves the site");
        Nginx {
            child,
            port: ports.0,
            ca_pem: work.join("ca.pem"),
            dir: work.to_path_buf(),
        }
    }

    /// Write the config with `listen` lines and start nginx; the child once
    /// `ready` accepts connections.
    fn launch(
        root: &Path,
        work: &Path,
        listen: &str,
        (ca, cert, key): (&str, &str, &str),
        ready: (Ipv4Addr, u16),
    ) -> Option<Child> {
        std::fs::write(work.join("ca.pem"), ca).unwrap();
        std::fs::write(work.join("cert.pem"), cert).unwrap();
        std::fs::write(work.join("key.pem"), key).unwrap();
        // As root, workers would run as nobody and not read a 0700 temporary dir.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root root;"
        } else {
            ""
        };
        let w = work.display();
        // One process (no master and workers): killing the child leaves nothing
        // behind holding a loopback port.
        let conf = format!(
            "{user}\ndaemon off;\nmaster_process off;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
             events {{}}\nhttp {{\n  log_format sent '$request_uri $status $bytes_sent';\n  access_log {w}/access.log sent;\n  client_body_temp_path {w}/t1;\n  proxy_temp_path {w}/t2;\n\
             fastcgi_temp_path {w}/t3;\n  uwsgi_temp_path {w}/t4;\n  scgi_temp_path {w}/t5;\n\
             default_type application/octet-stream;\n  types {{ text/plain txt; text/html html; application/json json; }}\n  gzip on;\n  gzip_types text/plain application/json;\n  gzip_min_length 1;\n\
             server {{\n    {listen}\n    ssl_certificate {w}/cert.pem;\n\
             ssl_certificate_key {w}/key.pem;\n    root {};\n    location / {{ }}\n  }}\n}}\n",
            root.display()
        );
        let conf_path = work.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx-light; scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(ready).is_ok() {
                return Some(child);
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "nginx did not start: {}",
            std::fs::read_to_string(work.join("error.log")).unwrap_or_default()
        );
        None
    }

    /// Each request served so far: path, status and bytes sent (headers and body,
    /// compressed as sent), from nginx's access log.
    pub fn served(&self) -> Vec<(String, u16, u64)> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((
                    f.next()?.to_string(),
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                ))
            })
            .collect()
    }

    /// `https://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
