//! The TLS ClientHello that `netprobe tls-hello` sends: the first flight of
//! a TLS 1.3 client (TLS 1.2 compatible), carrying the server name (SNI)
//! of the test's choosing.
//!
//! Why by hand: the tests need only this one message, in which no
//! cryptography happens, while a TLS library would have to bring its crypto
//! provider, and both of rustls' (ring and aws-lc-rs) compile C and
//! assembly. The message follows RFC 8446 §4.1.2 and looks like a
//! browser's: a TLS 1.0 record version, legacy_version TLS 1.2, a 32-byte
//! session id (the §D.4 middlebox compatibility mode), the usual cipher
//! suites, and server_name in the middle of the extension list, not first,
//! so that a parser that only looks where SNI usually sits fails the tests.
//! The key share is 32 random bytes, which is a valid X25519 public value.

use std::{fs::File, io::Read};

/// TLS record content type `handshake`.
const HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const CLIENT_HELLO: u8 = 1;
/// The largest record payload (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

/// Extension types (IANA TLS ExtensionType Values).
const SERVER_NAME: u16 = 0;
const SUPPORTED_GROUPS: u16 = 10;
const SIGNATURE_ALGORITHMS: u16 = 13;
const ALPN: u16 = 16;
const SUPPORTED_VERSIONS: u16 = 43;
const KEY_SHARE: u16 = 51;

const TLS_1_2: u16 = 0x0303;
const TLS_1_3: u16 = 0x0304;
const X25519: u16 = 0x001d;

/// TLS 1.3 suites first, then ECDHE with AES-GCM and ChaCha20 for TLS 1.2.
const CIPHER_SUITES: [u16; 9] = [
    0x1301, // TLS_AES_128_GCM_SHA256
    0x1302, // TLS_AES_256_GCM_SHA384
    0x1303, // TLS_CHACHA20_POLY1305_SHA256
    0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
];

/// x25519, secp256r1, secp384r1.
const GROUPS: [u16; 3] = [X25519, 0x0017, 0x0018];

const SIGNATURE_SCHEMES: [u16; 9] = [
    0x0403, // ecdsa_secp256r1_sha256
    0x0804, // rsa_pss_rsae_sha256
    0x0401, // rsa_pkcs1_sha256
    0x0503, // ecdsa_secp384r1_sha384
    0x0805, // rsa_pss_rsae_sha384
    0x0501, // rsa_pkcs1_sha384
    0x0806, // rsa_pss_rsae_sha512
    0x0601, // rsa_pkcs1_sha512
    0x0807, // ed25519
];

const ALPN_PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

/// One TLS record holding a ClientHello whose server_name extension names
/// `sni` (its bytes as given: case and trailing dot are kept), with fresh
/// random values. Panics when `sni` is too long for one record.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let mut record = vec![HANDSHAKE];
    // The record version of a first ClientHello is TLS 1.0 (§5.1).
    put_u16(&mut record, 0x0301);
    prefixed(&mut record, 2, |handshake| {
        handshake.push(CLIENT_HELLO);
        prefixed(handshake, 3, |hello| {
            put_u16(hello, TLS_1_2);
            hello.extend_from_slice(&random_bytes::<32>());
            prefixed(hello, 1, |session_id| {
                session_id.extend_from_slice(&random_bytes::<32>());
            });
            prefixed(hello, 2, |suites| put_u16s(suites, &CIPHER_SUITES));
            // compression_methods: null only.
            prefixed(hello, 1, |methods| methods.push(0));
            prefixed(hello, 2, |extensions| put_extensions(extensions, sni));
        });
    });
    assert!(
        record.len() - 5 <= MAX_RECORD,
        "a ClientHello with a {}-byte SNI does not fit one TLS record",
        sni.len()
    );
    record
}

fn put_extensions(out: &mut Vec<u8>, sni: &str) {
    extension(out, SUPPORTED_VERSIONS, |data| {
        prefixed(data, 1, |versions| put_u16s(versions, &[TLS_1_3, TLS_1_2]));
    });
    extension(out, SUPPORTED_GROUPS, |data| {
        prefixed(data, 2, |groups| put_u16s(groups, &GROUPS));
    });
    // RFC 6066 §3: a ServerNameList of one host_name (type 0).
    extension(out, SERVER_NAME, |data| {
        prefixed(data, 2, |list| {
            list.push(0);
            prefixed(list, 2, |name| name.extend_from_slice(sni.as_bytes()));
        });
    });
    extension(out, SIGNATURE_ALGORITHMS, |data| {
        prefixed(data, 2, |schemes| put_u16s(schemes, &SIGNATURE_SCHEMES));
    });
    extension(out, KEY_SHARE, |data| {
        prefixed(data, 2, |shares| {
            put_u16(shares, X25519);
            prefixed(shares, 2, |key| {
                key.extend_from_slice(&random_bytes::<32>())
            });
        });
    });
    // RFC 7301 §3.1.
    extension(out, ALPN, |data| {
        prefixed(data, 2, |list| {
            for protocol in ALPN_PROTOCOLS {
                prefixed(list, 1, |name| name.extend_from_slice(protocol.as_bytes()));
            }
        });
    });
}

/// An extension: its type, then its data with a 2-byte length.
fn extension(out: &mut Vec<u8>, kind: u16, data: impl FnOnce(&mut Vec<u8>)) {
    put_u16(out, kind);
    prefixed(out, 2, data);
}

/// Appends what `body` writes, preceded by its length as a `width`-byte
/// big-endian number, the way TLS encodes every variable-length field.
fn prefixed(out: &mut Vec<u8>, width: usize, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.resize(start + width, 0);
    body(out);
    let len = out.len() - start - width;
    assert!(
        len < 1 << (8 * width),
        "a TLS field of {len} bytes overflows its {width}-byte length"
    );
    out[start..start + width].copy_from_slice(&len.to_be_bytes()[size_of::<usize>() - width..]);
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u16s(out: &mut Vec<u8>, values: &[u16]) {
    for &value in values {
        put_u16(out, value);
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads big-endian fields off the front of a byte slice, panicking
    /// when it runs short: a parser written apart from the encoder.
    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn bytes(&mut self, len: usize) -> &'a [u8] {
            assert!(
                self.0.len() >= len,
                "{len} bytes wanted, {} left",
                self.0.len()
            );
            let (head, tail) = self.0.split_at(len);
            self.0 = tail;
            head
        }

        fn number(&mut self, width: usize) -> usize {
            self.bytes(width)
                .iter()
                .fold(0, |value, &byte| value << 8 | usize::from(byte))
        }

        /// A field with a `width`-byte length, which must fit what is left.
        fn vector(&mut self, width: usize) -> Reader<'a> {
            let len = self.number(width);
            Reader(self.bytes(len))
        }

        fn done(&self) {
            assert!(self.0.is_empty(), "{} bytes left over", self.0.len());
        }
    }

    /// The extensions of a ClientHello record, checking every length on
    /// the way.
    fn extensions(record: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let mut record = Reader(record);
        assert_eq!(record.bytes(3), [0x16, 0x03, 0x01]);
        let mut handshake = record.vector(2);
        record.done();
        assert_eq!(handshake.number(1), 1, "handshake type client_hello");
        let mut hello = handshake.vector(3);
        handshake.done();
        assert_eq!(hello.bytes(2), [0x03, 0x03]);
        hello.bytes(32);
        assert_eq!(hello.vector(1).0.len(), 32, "session id");
        let suites = hello.vector(2);
        assert!(!suites.0.is_empty() && suites.0.len() % 2 == 0);
        assert_eq!(hello.vector(1).0, [0], "null compression only");
        let mut list = hello.vector(2);
        hello.done();
        let mut found = Vec::new();
        while !list.0.is_empty() {
            let kind = list.number(2);
            found.push((kind, list.vector(2).0.to_vec()));
        }
        found
    }

    #[test]
    fn the_client_hello_parses_back_with_its_sni() {
        let found = extensions(&client_hello("Www.Example.com"));
        let kinds: Vec<usize> = found.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, [43, 10, 0, 13, 51, 16]);
        let (_, server_name) = &found[2];
        let mut expected = vec![0, 18, 0, 0, 15];
        expected.extend_from_slice(b"Www.Example.com");
        assert_eq!(*server_name, expected);
    }

    #[test]
    fn the_key_share_is_one_x25519_key() {
        let found = extensions(&client_hello("a.example"));
        let (_, key_share) = found.iter().find(|(kind, _)| *kind == 51).unwrap();
        let mut shares = Reader(key_share).vector(2);
        assert_eq!(shares.number(2), 0x001d);
        assert_eq!(shares.vector(2).0.len(), 32);
        shares.done();
    }

    #[test]
    fn random_values_differ_between_hellos() {
        assert_ne!(client_hello("a.example"), client_hello("a.example"));
    }

    #[test]
    #[should_panic(expected = "does not fit one TLS record")]
    fn an_sni_too_long_for_a_record_is_refused() {
        client_hello(&"a".repeat(MAX_RECORD));
    }
}
