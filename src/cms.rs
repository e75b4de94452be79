//! Signing the iOS configuration profiles: a CMS SignedData (RFC 5652) that holds the
//! profile, the signing certificate chain and one signature, as `openssl cms -sign
//! -nodetach` makes and as iOS checks ("Verified" under the profile's name when the
//! chain leads to a CA the phone trusts). The keys are ring's (RSA PKCS#1 v1.5 or
//! ECDSA P-256, with SHA-256); the few DER structures are written here.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What signs the profiles: the certificate chain (signer first) and its key.
pub struct ProfileSigner {
    chain: Vec<Vec<u8>>,
    /// The signer's issuer (DER Name) and serial number (DER INTEGER), as they
    /// stand in its certificate.
    issuer: Vec<u8>,
    serial: Vec<u8>,
    key: Key,
}

enum Key {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

impl std::fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSigner")
            .field("chain", &self.chain.len())
            .finish()
    }
}

// Object identifiers, DER content octets.
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const OID_SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// One DER element: `tag`, its length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

fn oid(o: &[u8]) -> Vec<u8> {
    tlv(0x06, o)
}

/// An AlgorithmIdentifier; `null`: with a NULL parameter (SHA-256, RSA).
fn alg(o: &[u8], null: bool) -> Vec<u8> {
    if null {
        seq(&[&oid(o), &[0x05, 0x00]])
    } else {
        seq(&[&oid(o)])
    }
}

/// A DER element read: its tag, the whole element, its content, and what follows.
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The element at the start of `der`.
fn read(der: &[u8]) -> Option<Element<'_>> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, der.get(..end)?, der.get(head..end)?, der.get(end..)?))
}

/// The issuer Name and serial number INTEGER of a DER certificate, as encoded.
fn issuer_and_serial(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, _, certificate, _) = read(cert)?;
    let (_, _, tbs, _) = read(certificate)?;
    let (tag, _, _, mut rest) = read(tbs)?;
    if tag != 0xa0 {
        // No version field: the serial number came first.
        rest = tbs;
    }
    let (_, serial, _, rest) = read(rest)?;
    let (_, _, _, rest) = read(rest)?; // the signature algorithm
    let (_, issuer, _, _) = read(rest)?;
    Some((issuer.to_vec(), serial.to_vec()))
}

/// UTCTime of `unix` seconds (years 1950 to 2049).
fn utc_time(unix: u64) -> Vec<u8> {
    let secs = unix % 86_400;
    let (y, m, d) = crate::wallclock::civil_from_days((unix / 86_400) as i64);
    let text = format!(
        "{:02}{m:02}{d:02}{:02}{:02}{:02}Z",
        y % 100,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    tlv(0x17, text.as_bytes())
}

impl ProfileSigner {
    /// The signer of `[warnpage] profile_cert` and `profile_key`.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<ProfileSigner, String> {
        let read = |p: &std::path::Path, k: &str| {
            std::fs::read(p).map_err(|e| format!("warnpage.{k}: cannot read {}: {e}", p.display()))
        };
        let (c, k) = (read(cert, "profile_cert")?, read(key, "profile_key")?);
        Self::from_pem(&c, &k).map_err(|e| {
            format!(
                "warnpage.profile_cert / profile_key ({}, {}): {e}",
                cert.display(),
                key.display()
            )
        })
    }

    /// The signer of the PEM certificate chain and private key (PKCS#8 RSA or
    /// ECDSA P-256, or PKCS#1 RSA); errors say what is wrong with which.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<ProfileSigner, String> {
        let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(chain_pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate file: {e}"))?;
        let leaf = chain
            .first()
            .ok_or("the certificate file holds no certificate")?;
        let (issuer, serial) = issuer_and_serial(leaf)
            .ok_or("the first certificate is not DER X.509 that can be read")?;
        let key = match PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("the key file: {e}"))?
        {
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(der) {
                    Ok(k) => Key::Rsa(k),
                    Err(_) => Key::Ecdsa(
                        EcdsaKeyPair::from_pkcs8(
                            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                            der,
                            &SystemRandom::new(),
                        )
                        .map_err(|e| {
                            format!("the key is neither RSA nor ECDSA P-256 in PKCS#8: {e}")
                        })?,
                    ),
                }
            }
            PrivateKeyDer::Pkcs1(k) => Key::Rsa(
                RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| format!("the RSA key: {e}"))?,
            ),
            _ => {
                return Err(
                    "an EC key must be PKCS#8 (openssl pkcs8 -topk8 -nocrypt converts it)".into(),
                );
            }
        };
        Ok(ProfileSigner {
            chain,
            issuer,
            serial,
            key,
        })
    }

    /// `content` signed, with the time of signing `unix`: a DER ContentInfo.
    pub fn sign(&self, content: &[u8], unix: u64) -> Result<Vec<u8>, String> {
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        let attrs = [
            seq(&[&oid(OID_CONTENT_TYPE), &set(&[&oid(OID_DATA)])]),
            seq(&[&oid(OID_SIGNING_TIME), &set(&[&utc_time(unix)])]),
            seq(&[
                &oid(OID_MESSAGE_DIGEST),
                &set(&[&tlv(0x04, digest.as_ref())]),
            ]),
        ];
        // DER orders a SET OF by its encodings.
        let mut attrs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        attrs.sort();
        // Signed as a SET; carried as [0] IMPLICIT.
        let signed = set(&attrs);
        let rng = SystemRandom::new();
        let (sig, sig_alg) = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, &signed, &mut sig)
                    .map_err(|_| "RSA signing failed".to_string())?;
                (sig, alg(OID_RSA, true))
            }
            Key::Ecdsa(k) => {
                let sig = k
                    .sign(&rng, &signed)
                    .map_err(|_| "ECDSA signing failed".to_string())?;
                (sig.as_ref().to_vec(), alg(OID_ECDSA_SHA256, false))
            }
        };
        let mut implicit = signed.clone();
        implicit[0] = 0xa0;
        let signer_info = seq(&[
            &[0x02, 0x01, 0x01],
            &seq(&[&self.issuer, &self.serial]),
            &alg(OID_SHA256, true),
            &implicit,
            &sig_alg,
            &tlv(0x04, &sig),
        ]);
        let certs: Vec<&[u8]> = self.chain.iter().map(Vec::as_slice).collect();
        let signed_data = seq(&[
            &[0x02, 0x01, 0x01],
            &set(&[&alg(OID_SHA256, true)]),
            &seq(&[&oid(OID_DATA), &tlv(0xa0, &tlv(0x04, content))]),
            &tlv(0xa0, &certs.concat()),
            &set(&[&signer_info]),
        ]);
        Ok(seq(&[&oid(OID_SIGNED_DATA), &tlv(0xa0, &signed_data)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_times_are_der() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            read(&long).map(|(t, _, c, r)| (t, c.len(), r.len())),
            Some((4, 300, 0))
        );
        assert!(read(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x04, 0x05, 1]).is_none());
        // 2026-12-07 12:34:56 UTC
        assert_eq!(utc_time(1_796_646_896), tlv(0x17, b"261207123456Z"));
        assert_eq!(utc_time(0), tlv(0x17, b"700101000000Z"));
    }

    #[test]
    fn bad_keys_and_certificates_are_refused_by_name() {
        let e = ProfileSigner::from_pem(b"", b"").unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let not_x509 = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let e = ProfileSigner::from_pem(not_x509, b"").unwrap_err();
        assert!(e.contains("X.509"), "{e}");
    }
}
