//! The Noise certificate chain the simulator presents: a root key of its own
//! (standing in for WhatsApp's, which no simulator holds) signs an
//! intermediate certificate, which signs the leaf naming the server's static
//! key. The signatures are real XEdDSA, so a client that is told the root
//! key (Baileys: `WA_CERT_DETAILS.PUBLIC_KEY`) verifies the whole chain;
//! whatsapp-rust, which hard-codes WhatsApp's root, needs
//! `danger-skip-cert-chain-verify` instead and checks the structure only.

use wacore::libsignal::protocol::KeyPair;
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp::{self as wa, cert_chain::noise_certificate};

/// WhatsApp's root issuer serial; clients check the intermediate names it.
const ROOT_SERIAL: u32 = 0;
const INTERMEDIATE_SERIAL: u32 = 1;
const LEAF_SERIAL: u32 = 2;
/// Validity window: from well before any test to 2030. whatsapp-rust caches
/// the chain and only tries IK while it is valid.
const NOT_BEFORE: u64 = 1_700_000_000;
const NOT_AFTER: u64 = 1_900_000_000;

/// The key that signs intermediate certificates, one per simulator.
#[derive(Clone)]
pub(crate) struct CertRoot {
    key: KeyPair,
}

impl CertRoot {
    pub(crate) fn generate() -> Self {
        Self {
            key: wacore::crypto::generate_curve_key_pair(),
        }
    }

    /// The 32-byte Curve25519 public key a client verifies the chain with.
    pub(crate) fn public_key(&self) -> [u8; 32] {
        self.key
            .public_key
            .public_key_bytes()
            .try_into()
            .expect("a Curve25519 public key is 32 bytes")
    }

    /// An encoded `CertChain` for the server static key `server_static`.
    pub(crate) fn chain_for(&self, server_static: &[u8; 32]) -> Vec<u8> {
        let intermediate = wacore::crypto::generate_curve_key_pair();
        let intermediate_details = noise_certificate::Details {
            serial: Some(INTERMEDIATE_SERIAL),
            issuer_serial: Some(ROOT_SERIAL),
            key: Some(intermediate.public_key.public_key_bytes().to_vec()),
            not_before: Some(NOT_BEFORE),
            not_after: Some(NOT_AFTER),
        }
        .encode_to_vec();
        let leaf_details = noise_certificate::Details {
            serial: Some(LEAF_SERIAL),
            issuer_serial: Some(INTERMEDIATE_SERIAL),
            key: Some(server_static.to_vec()),
            not_before: Some(NOT_BEFORE),
            not_after: Some(NOT_AFTER),
        }
        .encode_to_vec();
        let certificate = |signer: &KeyPair, details: Vec<u8>| wa::cert_chain::NoiseCertificate {
            signature: Some(sign(signer, &details)),
            details: Some(details),
        };
        wa::CertChain {
            intermediate: MessageField::some(certificate(&self.key, intermediate_details)),
            leaf: MessageField::some(certificate(&intermediate, leaf_details)),
        }
        .encode_to_vec()
    }
}

fn sign(key: &KeyPair, message: &[u8]) -> Vec<u8> {
    wacore::crypto::calculate_curve_signature(&key.private_key, message)
        .expect("XEdDSA signing with a freshly generated key cannot fail")
        .to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wacore::libsignal::protocol::PublicKey;

    fn verify(key: &[u8], details: &[u8], signature: &[u8]) -> bool {
        PublicKey::from_djb_public_key_bytes(key)
            .unwrap()
            .verify_signature(details, signature)
    }

    #[test]
    fn chain_verifies_from_the_root_to_the_server_key() {
        let root = CertRoot::generate();
        let server = [7u8; 32];
        let chain = wa::CertChain::decode_from_slice(&root.chain_for(&server)).unwrap();
        let intermediate = chain.intermediate.as_option().unwrap();
        let leaf = chain.leaf.as_option().unwrap();
        let intermediate_details = intermediate.details.as_deref().unwrap();
        let leaf_details = leaf.details.as_deref().unwrap();
        assert!(verify(
            &root.public_key(),
            intermediate_details,
            intermediate.signature.as_deref().unwrap()
        ));
        let details = noise_certificate::Details::decode_from_slice(intermediate_details).unwrap();
        assert_eq!(details.issuer_serial, Some(ROOT_SERIAL));
        assert!(verify(
            details.key.as_deref().unwrap(),
            leaf_details,
            leaf.signature.as_deref().unwrap()
        ));
        let leaf = noise_certificate::Details::decode_from_slice(leaf_details).unwrap();
        assert_eq!(leaf.key.as_deref(), Some(&server[..]));
        let other_root = CertRoot::generate();
        assert!(!verify(
            &other_root.public_key(),
            intermediate_details,
            intermediate.signature.as_deref().unwrap()
        ));
    }
}
