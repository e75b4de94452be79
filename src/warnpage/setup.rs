//! Setting up a phone for a place's private DNS name, in a minute at the community
//! office: the page `/setup/<id>` (Chinese first), Android's Private DNS steps as
//! drawings, an iOS configuration profile (a DoH payload for the place), and the QR
//! code of the page, which the kiosk shows too (`/kiosk?place=<id>`). Pure: the
//! server hands in the host the phone reached and gets text back.

use super::escape_html;
use crate::config::Config;

/// The private DNS names the appliance serves, from the config.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// `[server] dns_name` ("": places have no DoT name, only their DoH path).
    pub dns_name: String,
    /// The DNS over HTTPS port, when it is not 443 (`None`: 443, or no DoH).
    pub doh_port: Option<u16>,
    /// Whether DNS over TLS is served (with a `dns_name`).
    pub dot: bool,
    /// Whether DNS over HTTPS is served (with a `dns_name`).
    pub doh: bool,
    /// The places with an id: (id, community or street, street).
    pub places: Vec<(String, String, String)>,
    /// What signs the profiles (`[warnpage] profile_cert`), if anything.
    pub signer: Option<std::sync::Arc<crate::cms::ProfileSigner>>,
}

impl Setup {
    /// What `cfg` offers.
    pub fn from_config(cfg: &Config) -> Setup {
        let s = &cfg.server;
        let doh_port = s
            .listen_https
            .first()
            .map(|a| a.port())
            .filter(|&p| p != 443);
        Setup {
            dns_name: s.dns_name.clone(),
            doh_port,
            dot: !s.listen_tls.is_empty() && !s.dns_name.is_empty(),
            doh: !s.listen_https.is_empty() && !s.dns_name.is_empty(),
            places: cfg
                .places
                .ids()
                .map(|(id, p)| {
                    let name = if p.community.is_empty() {
                        &p.street
                    } else {
                        &p.community
                    };
                    (id.to_string(), name.clone(), p.street.clone())
                })
                .collect(),
            signer: None,
        }
    }

    /// With `signer` signing the profiles.
    pub fn with_signer(
        mut self,
        signer: Option<std::sync::Arc<crate::cms::ProfileSigner>>,
    ) -> Setup {
        self.signer = signer;
        self
    }

    /// The profile of place `id` as served: signed (DER CMS) when a signer is
    /// configured, else the plist itself. `unix`: the time of signing.
    pub fn profile(&self, id: &str, unix: u64) -> Option<Result<Vec<u8>, String>> {
        let plist = self.mobileconfig(id)?;
        Some(match &self.signer {
            Some(s) => s.sign(plist.as_bytes(), unix),
            None => Ok(plist.into_bytes()),
        })
    }

    /// The place `id` (any case): its id and name.
    fn place(&self, id: &str) -> Option<(&str, &str, &str)> {
        self.places
            .iter()
            .find(|(i, _, _)| i.eq_ignore_ascii_case(id))
            .map(|(i, n, s)| (i.as_str(), n.as_str(), s.as_str()))
    }

    /// The place's name, if `id` is one with encrypted DNS to set up.
    pub fn place_name(&self, id: &str) -> Option<&str> {
        self.place(id)
            .filter(|_| self.dot || self.doh)
            .map(|(_, n, _)| n)
    }

    /// Android's Private DNS host name of the place.
    pub fn dot_host(&self, id: &str) -> String {
        format!("{}.{}", id.to_ascii_lowercase(), self.dns_name)
    }

    /// The DNS over HTTPS URL of the place.
    pub fn doh_url(&self, id: &str) -> String {
        let port = self.doh_port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "https://{}{port}/dns-query/{}",
            self.dns_name,
            id.to_ascii_lowercase()
        )
    }

    /// The setup page of place `id` (None: no such place, or no encrypted DNS),
    /// whose address is `page_url` (for its QR code).
    pub fn page(&self, id: &str, page_url: &str) -> Option<String> {
        let name = self.place_name(id)?;
        let (id, _, _) = self.place(id)?;
        let host = escape_html(&self.dot_host(id));
        let qr = qr_svg(page_url, 220)?;
        let android = if self.dot {
            format!(
                r#"<section><h2>安卓手机 <small>Android 9 及以上</small></h2>
<ol class="steps">
<li><div class="screen"><b>设置</b><span>网络和互联网 ›</span><span class="dim">WLAN</span><span class="dim">移动网络</span></div>打开<b>设置</b>，点<b>网络和互联网</b>（有的手机叫“更多连接”）。</li>
<li><div class="screen"><b>网络和互联网</b><span class="dim">WLAN</span><span>私人 DNS ›</span></div>点<b>私人 DNS</b>（Private DNS，有的手机在“高级”里）。</li>
<li><div class="screen"><b>私人 DNS</b><span class="dim">○ 关闭</span><span class="dim">○ 自动</span><span>● 私人 DNS 提供商主机名</span><code>{host}</code></div>选<b>私人 DNS 提供商主机名</b>，输入下面的名字，点<b>保存</b>：<code class="big">{host}</code></li>
</ol></section>"#
            )
        } else {
            String::new()
        };
        let ios = if self.doh {
            format!(
                r#"<section><h2>苹果手机 <small>iOS 14 及以上</small></h2>
<ol class="steps">
<li><a class="button" href="/setup/{id}/profile.mobileconfig">下载描述文件</a>，手机提示时点<b>允许</b>。</li>
<li>打开<b>设置 › 通用 › VPN 与设备管理</b>，点刚下载的“反诈 DNS”，点<b>安装</b>。</li>
</ol></section>"#
            )
        } else {
            String::new()
        };
        Some(format!(
            r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>手机反诈保护设置 · {name}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC",sans-serif;margin:0;background:#f4f6f8;color:#1b1f24;font-size:18px;line-height:1.6}}
main{{max-width:640px;margin:auto;padding:16px}}
h1{{font-size:26px;margin:8px 0}} h2{{font-size:21px;margin:18px 0 6px}} small{{color:#5a6572;font-weight:normal;font-size:15px}}
section{{background:#fff;border-radius:12px;padding:12px 16px;margin:12px 0}}
.steps li{{margin:10px 0}}
.screen{{display:flex;flex-direction:column;border:3px solid #333;border-radius:14px;width:210px;padding:8px 10px;margin:6px 0;background:#fafafa;font-size:15px}}
.screen b{{border-bottom:1px solid #ccc;margin-bottom:4px}} .screen span{{padding:2px 0}} .dim{{color:#999}}
code{{font-size:15px;word-break:break-all;background:#eef;padding:1px 4px}} code.big{{display:block;font-size:20px;margin:6px 0;padding:8px}}
.button{{display:inline-block;background:#c62828;color:#fff;padding:10px 18px;border-radius:8px;text-decoration:none;font-weight:bold}}
.qr{{text-align:center}} .qr svg{{max-width:220px;height:auto}}
.en{{color:#5a6572;font-size:15px}}
</style></head><body><main>
<h1>让手机在任何网络下都受反诈保护</h1>
<p><b>{name}</b> · 设置一次，用 WLAN 或 4G/5G 上网时，打开诈骗网站前都会先看到提醒。</p>
<section><h2>这个设置做什么</h2>
<p>手机查找网址时，会先问区里的反诈服务器。遇到已知的诈骗网站，手机会打开提醒页，而不是诈骗网站；其他网站照常打开。</p>
<p><b>社区能看到什么：</b>只会看到这台手机被拦下了哪些诈骗网站，以便工作人员上门提醒；看不到您的其他上网内容、聊天或通讯录。</p>
<p><b>可以随时取消：</b>安卓把“私人 DNS”改回“自动”；苹果在“VPN 与设备管理”里删除描述文件。</p>
</section>
{android}{ios}
<section class="qr"><h2>扫码打开本页</h2>{qr}<p class="en">Scan to open this page</p></section>
<p class="en">Protection that follows you: this sets the phone's DNS to the district's anti-fraud resolver ({host}). Known scam sites show a warning; nothing else changes. The community sees which scam sites a device was stopped from, never its other traffic. Undo: set Private DNS back to Automatic (Android) or remove the profile (iOS).</p>
</main></body></html>"#
        ))
    }

    /// The iOS / macOS configuration profile of place `id`: a DNS settings payload
    /// (DNS over HTTPS to the place's URL). Unsigned, the phone shows it as not
    /// verified, and installs it when the resident confirms; [`Setup::profile`]
    /// signs it when a signer is configured.
    pub fn mobileconfig(&self, id: &str) -> Option<String> {
        let name = self.place_name(id)?;
        let (id, _, _) = self.place(id)?;
        if !self.doh {
            return None;
        }
        let url = self.doh_url(id);
        let (outer, inner) = (uuid(&format!("profile {url}")), uuid(&format!("dns {url}")));
        let x = |s: &str| escape_html(s);
        Some(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>DNSSettings</key>
      <dict>
        <key>DNSProtocol</key>
        <string>HTTPS</string>
        <key>ServerURL</key>
        <string>{url}</string>
      </dict>
      <key>PayloadDisplayName</key>
      <string>反诈 DNS · {name}</string>
      <key>PayloadIdentifier</key>
      <string>fanzha.dns.{id}.settings</string>
      <key>PayloadType</key>
      <string>com.apple.dnsSettings.managed</string>
      <key>PayloadUUID</key>
      <string>{inner}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
    </dict>
  </array>
  <key>PayloadDescription</key>
  <string>用区反诈服务器查找网址：诈骗网站先显示提醒。可在“VPN 与设备管理”中删除。</string>
  <key>PayloadDisplayName</key>
  <string>反诈 DNS · {name}</string>
  <key>PayloadIdentifier</key>
  <string>fanzha.dns.{id}</string>
  <key>PayloadRemovalDisallowed</key>
  <false/>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>{outer}</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
</dict>
</plist>
"#,
            url = x(&url),
            name = x(name),
        ))
    }
}

/// A stable UUID (v4 layout) from `seed`: the same place gets the same profile, so
/// installing it again replaces it.
fn uuid(seed: &str) -> String {
    use sha2::Digest;
    let mut b: [u8; 16] = sha2::Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The QR code of `text` as inline SVG, at least `size` pixels wide.
pub fn qr_svg(text: &str, size: u32) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(size, size)
        .quiet_zone(true)
        .build();
    // Inline: drop the XML declaration.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            dns_name: "dns.district.example".into(),
            doh_port: None,
            dot: true,
            doh: true,
            places: vec![("binfen".into(), "缤纷社区".into(), "西兴街道".into())],
            signer: None,
        }
    }

    #[test]
    fn the_page_gives_the_places_names_and_says_what_the_community_sees() {
        let s = setup();
        let page = s.page("BinFen", "http://10.0.0.1/setup/binfen").unwrap();
        assert!(page.contains("binfen.dns.district.example"));
        assert!(page.contains("/setup/binfen/profile.mobileconfig"));
        assert!(page.contains("缤纷社区"));
        assert!(page.contains("可以随时取消"));
        assert!(page.contains("看不到您的其他上网内容"));
        assert!(page.contains("<svg"));
        assert!(s.page("nowhere", "http://x/").is_none());
        let off = Setup {
            dot: false,
            doh: false,
            ..setup()
        };
        assert!(off.page("binfen", "http://x/").is_none());
    }

    #[test]
    fn the_profile_is_a_doh_payload_for_the_place_and_stable() {
        let s = Setup {
            doh_port: Some(8443),
            ..setup()
        };
        let p = s.mobileconfig("binfen").unwrap();
        assert!(p.contains("<string>https://dns.district.example:8443/dns-query/binfen</string>"));
        assert!(p.contains("com.apple.dnsSettings.managed"));
        assert!(p.contains("<string>HTTPS</string>"));
        assert_eq!(p, s.mobileconfig("binfen").unwrap());
        let u = uuid("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid("a"), uuid("b"));
        let no_doh = Setup {
            doh: false,
            ..setup()
        };
        assert!(no_doh.mobileconfig("binfen").is_none());
    }

    #[test]
    fn the_qr_code_is_an_svg_of_at_least_the_size() {
        let svg = qr_svg("http://10.0.0.1:8080/setup/binfen", 200).unwrap();
        assert!(svg.starts_with("<svg"));
        let w: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(w >= 200, "{w}");
    }
}
