//! The config loader: any text is a config or an error that names a key, never a
//! panic.
#![no_main]

use fanzha::config::RawConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::env::temp_dir();
    match RawConfig::from_toml(text, "fuzz.toml") {
        Ok(raw) => {
            let _ = raw.validate(&dir, None);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
