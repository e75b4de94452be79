//! sd_notify: tell systemd (Type=notify) when fanzha is ready and when it stops.
//! Without `$NOTIFY_SOCKET` (not under systemd) this does nothing.

/// Send one sd_notify message (`READY=1`, `STOPPING=1`, …); errors are logged only.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "sd_notify: cannot create a socket");
            return;
        }
    };
    let res = if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = res {
        tracing::warn!(error = %e, socket = %path, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_the_socket_named_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify.sock");
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        // SAFETY: tests in this binary do not read NOTIFY_SOCKET concurrently.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &p) };
        super::notify("READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
