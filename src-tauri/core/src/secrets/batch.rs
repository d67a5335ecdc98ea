//! Many items' secrets in one Secret Service call (`GetSecrets`).
//!
//! dbus-secret-service reads one item per call and keeps its session to
//! itself, so the bulk read negotiates a session of its own here. A call per
//! item costs the bus daemon and the keyring daemon a message each way, and
//! at start-up those daemons share the cores with the restore: one call per
//! [`BATCH_ITEMS`] items instead is most of what the keyring read costs them.
//!
//! The session is the spec's `dh-ietf1024-sha256-aes128-cbc-pkcs7`: a
//! Diffie-Hellman exchange in RFC 2409's second Oakley group, HKDF-SHA256 of
//! the shared secret (no salt, no info) as an AES-128 key, each secret
//! AES-128-CBC with PKCS#7 padding under the IV the daemon sends with it.
//! Secrets never cross the bus in the clear, as with the shared session.

use dbus::Path;
use dbus::arg::Variant;
use dbus::blocking::Connection;
use dbus_secret_service as ss;
use num_bigint::BigUint;
use std::collections::HashMap;
use std::time::Duration;
use zeroize::Zeroizing;

/// Items per `GetSecrets` call. A device's entry is one to two kilobytes:
/// this bounds a reply to about half a megabyte (the bus allows 128 MiB)
/// and makes a thousand devices four calls.
pub(super) const BATCH_ITEMS: usize = 256;

const BUS_NAME: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";
const SESSION_INTERFACE: &str = "org.freedesktop.Secret.Session";
const ALGORITHM: &str = "dh-ietf1024-sha256-aes128-cbc-pkcs7";
/// libdbus's default; the keyring daemon answers in milliseconds, and a
/// locked item is never asked for (the caller unlocks first).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// RFC 2409, section 6.2: the 1024-bit MODP group, generator 2.
const OAKLEY_GROUP_2_PRIME: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381",
    "FFFFFFFFFFFFFFFF",
);
const PRIME_BYTES: usize = 128;

type AesKey = Zeroizing<[u8; 16]>;
/// What `GetSecrets` returns per item: session, IV, ciphertext, content type.
type WireSecret = (Path<'static>, Vec<u8>, Vec<u8>, String);

/// A bus connection with an encrypted Secret Service session of its own.
/// The daemon ends the session when the connection closes; it is also
/// closed explicitly on drop.
pub(super) struct BatchReader {
    connection: Connection,
    session: Path<'static>,
    key: AesKey,
}

fn crypto_error(what: &'static str) -> ss::Error {
    ss::Error::Crypto(what.into())
}

impl BatchReader {
    pub(super) fn open() -> Result<BatchReader, ss::Error> {
        let connection = Connection::new_session().map_err(ss::Error::Dbus)?;
        let prime = BigUint::parse_bytes(OAKLEY_GROUP_2_PRIME.as_bytes(), 16)
            .ok_or_else(|| crypto_error("the Oakley group prime does not parse"))?;
        // A fresh private exponent per session, from the OS-seeded CSPRNG.
        let private = {
            let mut bytes = Zeroizing::new([0u8; PRIME_BYTES]);
            rand::RngCore::fill_bytes(&mut rand::rng(), bytes.as_mut_slice());
            BigUint::from_bytes_be(bytes.as_slice()) % &prime
        };
        let public = BigUint::from(2u32).modpow(&private, &prime);
        let (output, session): (Variant<Vec<u8>>, Path<'static>) = connection
            .with_proxy(BUS_NAME, SERVICE_PATH, CALL_TIMEOUT)
            .method_call(
                SERVICE_INTERFACE,
                "OpenSession",
                (ALGORITHM, Variant(public.to_bytes_be())),
            )
            .map_err(ss::Error::Dbus)?;
        let theirs = BigUint::from_bytes_be(&output.0);
        // A peer key of 0, 1 or p-1 would force a shared secret anyone knows.
        if theirs <= BigUint::from(1u32) || theirs >= &prime - 1u32 {
            return Err(crypto_error(
                "the Secret Service sent an unusable public key",
            ));
        }
        let key = derive_key(&theirs.modpow(&private, &prime))?;
        Ok(BatchReader {
            connection,
            session,
            key,
        })
    }

    /// The secrets of `items`, by item. An item the daemon leaves out
    /// (locked, or deleted since it was found) is missing from the map.
    pub(super) fn read(
        &self,
        items: &[Path<'static>],
    ) -> Result<HashMap<Path<'static>, Vec<u8>>, ss::Error> {
        let (found,): (HashMap<Path<'static>, WireSecret>,) = self
            .connection
            .with_proxy(BUS_NAME, SERVICE_PATH, CALL_TIMEOUT)
            .method_call(
                SERVICE_INTERFACE,
                "GetSecrets",
                (items.to_vec(), self.session.clone()),
            )
            .map_err(ss::Error::Dbus)?;
        found
            .into_iter()
            .map(|(item, (_, iv, ciphertext, _))| Ok((item, decrypt(&self.key, &iv, &ciphertext)?)))
            .collect()
    }
}

impl Drop for BatchReader {
    fn drop(&mut self) {
        let _: Result<(), dbus::Error> = self
            .connection
            .with_proxy(BUS_NAME, &self.session, CALL_TIMEOUT)
            .method_call(SESSION_INTERFACE, "Close", ());
    }
}

/// The AES key of a session whose Diffie-Hellman shared secret is `shared`.
fn derive_key(shared: &BigUint) -> Result<AesKey, ss::Error> {
    // The shared secret enters HKDF at the prime's full width: a value with
    // leading zero bytes is padded, as the daemons do.
    let bytes = Zeroizing::new(shared.to_bytes_be());
    let mut input = Zeroizing::new([0u8; PRIME_BYTES]);
    let start = PRIME_BYTES
        .checked_sub(bytes.len())
        .ok_or_else(|| crypto_error("the shared secret is wider than the prime"))?;
    input[start..].copy_from_slice(&bytes);
    let mut key = Zeroizing::new([0u8; 16]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, input.as_slice())
        .expand(&[], key.as_mut_slice())
        .map_err(|_| crypto_error("HKDF cannot make a 16-byte key"))?;
    Ok(key)
}

fn decrypt(key: &AesKey, iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, ss::Error> {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(key.as_slice(), iv)
        .map_err(|_| crypto_error("a secret came with an IV of the wrong length"))?;
    decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| crypto_error("a secret did not decrypt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &AesKey, iv: &[u8; 16], clear: &[u8]) -> Vec<u8> {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockEncryptMut, KeyIvInit};
        cbc::Encryptor::<aes::Aes128>::new_from_slices(key.as_slice(), iv)
            .expect("key and IV lengths")
            .encrypt_padded_vec_mut::<Pkcs7>(clear)
    }

    #[test]
    fn a_short_shared_secret_is_padded_to_the_prime_width() {
        // Same value, with and without the leading zeros the padding adds:
        // a key derived from the unpadded bytes would differ.
        let small = BigUint::from(0x0102u32);
        let mut padded = [0u8; PRIME_BYTES];
        padded[PRIME_BYTES - 2..].copy_from_slice(&[1, 2]);
        let mut expected = [0u8; 16];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &padded)
            .expand(&[], &mut expected)
            .expect("expand");
        assert_eq!(*derive_key(&small).expect("key"), expected);
        let mut unpadded = [0u8; 16];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &[1, 2])
            .expand(&[], &mut unpadded)
            .expect("expand");
        assert_ne!(expected, unpadded);
    }

    #[test]
    fn secrets_decrypt_and_tampering_is_an_error_that_shows_nothing() {
        let key = Zeroizing::new([7u8; 16]);
        let iv = [9u8; 16];
        let clear = b"{\"noise_key\":[1,2,3]}";
        let ciphertext = encrypt(&key, &iv, clear);
        assert_eq!(decrypt(&key, &iv, &ciphertext).expect("decrypts"), clear);

        let wrong_key = Zeroizing::new([8u8; 16]);
        let err = decrypt(&wrong_key, &iv, &ciphertext)
            .map(|_| ())
            .expect_err("a wrong key fails the padding check");
        assert!(matches!(err, ss::Error::Crypto(_)));
        assert!(!err.to_string().contains("noise"));
        assert!(decrypt(&key, &iv[..8], &ciphertext).is_err());
    }

    #[test]
    fn the_prime_is_the_1024_bit_oakley_group() {
        let prime = BigUint::parse_bytes(OAKLEY_GROUP_2_PRIME.as_bytes(), 16).expect("parses");
        assert_eq!(prime.bits(), 1024);
        assert_eq!(prime.to_bytes_be().len(), PRIME_BYTES);
    }
}
