//! The primary phone's half of device linking: the ADV identity it signs for
//! a companion, and the pairing-code (link code) key agreement.

use wacore::libsignal::crypto::{aes_256_gcm_decrypt, hmac_sha256};
use wacore::libsignal::protocol::KeyPair;
use wacore::pair_code::PairCodeUtils;
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::error::PhoneError;
use crate::noise::parse_public;

const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];
/// WhatsApp's `ADV_PREFIX_KEY_INDEX_LIST_ACCOUNT_SIGNATURE`.
const KEY_INDEX_LIST_SIGNATURE_PREFIX: [u8; 2] = [6, 2];

/// `ADVSignedDeviceIdentityHMAC` bytes for `<pair-success><device-identity>`:
/// details signed with the phone's identity key over the companion's identity
/// key, and the whole authenticated with the secret both sides share (from the
/// QR code, or derived in the pairing-code exchange).
pub(crate) fn signed_device_identity(
    phone_identity: &KeyPair,
    companion_identity: &[u8; 32],
    adv_secret: &[u8; 32],
    adv_raw_id: u32,
    key_index: u32,
    now_secs: u64,
) -> Result<Vec<u8>, PhoneError> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(adv_raw_id),
        timestamp: Some(now_secs),
        key_index: Some(key_index),
        ..Default::default()
    }
    .encode_to_vec();
    let mut signed_message = Vec::with_capacity(2 + details.len() + 32);
    signed_message.extend_from_slice(&ACCOUNT_SIGNATURE_PREFIX);
    signed_message.extend_from_slice(&details);
    signed_message.extend_from_slice(companion_identity);
    let account_signature =
        wacore::crypto::calculate_curve_signature(&phone_identity.private_key, &signed_message)
            .map_err(|e| PhoneError::CompanionRejected(format!("signing failed: {e}")))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(phone_identity.public_key.public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let hmac = hmac_sha256(adv_secret, &signed);
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac.to_vec()),
        ..Default::default()
    }
    .encode_to_vec())
}

/// What the phone vouches for in its key-index list: which key indexes its
/// linked companions hold, out of all it has issued.
pub(crate) struct KeyIndexList {
    pub(crate) adv_raw_id: u32,
    /// When the list last changed (unix seconds).
    pub(crate) timestamp: u64,
    /// The highest key index issued so far.
    pub(crate) current_index: u32,
    /// Key indexes of the companions linked now.
    pub(crate) valid_indexes: Vec<u32>,
}

/// `ADVSignedKeyIndexList` bytes for a usync `<key-index-list>`: the list,
/// signed with the phone's identity key over the prefix and the serialized
/// details. Clients check it against the primary's identity key (so no
/// `accountSignatureKey` is carried) and drop companions whose key index is
/// neither valid nor newer than `current_index`.
pub(crate) fn signed_key_index_list(
    phone_identity: &KeyPair,
    list: &KeyIndexList,
) -> Result<Vec<u8>, wacore::libsignal::protocol::CurveError> {
    let details = wa::ADVKeyIndexList {
        raw_id: Some(list.adv_raw_id),
        timestamp: Some(list.timestamp),
        current_index: Some(list.current_index),
        valid_indexes: list.valid_indexes.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut signed_message = Vec::with_capacity(2 + details.len());
    signed_message.extend_from_slice(&KEY_INDEX_LIST_SIGNATURE_PREFIX);
    signed_message.extend_from_slice(&details);
    let account_signature =
        wacore::crypto::calculate_curve_signature(&phone_identity.private_key, &signed_message)?;
    Ok(wa::ADVSignedKeyIndexList {
        details: Some(details),
        account_signature: Some(account_signature.to_vec()),
        ..Default::default()
    }
    .encode_to_vec())
}

/// Checks the companion's counter-signature in `<pair-device-sign>`: proof
/// that the device holding `companion_identity` accepted this account.
pub(crate) fn verify_device_signature(
    signed_identity: &[u8],
    companion_identity: &[u8; 32],
    phone_identity_public: &[u8],
) -> Result<(), PhoneError> {
    let rejected = |why: &str| PhoneError::CompanionRejected(why.to_string());
    let signed = wa::ADVSignedDeviceIdentity::decode_from_slice(signed_identity)
        .map_err(|_| rejected("undecodable pair-device-sign"))?;
    let details = signed.details.as_deref().unwrap_or_default();
    let device_signature = signed
        .device_signature
        .as_deref()
        .ok_or_else(|| rejected("pair-device-sign without a device signature"))?;
    let mut message = Vec::with_capacity(2 + details.len() + 64);
    message.extend_from_slice(&DEVICE_SIGNATURE_PREFIX);
    message.extend_from_slice(details);
    message.extend_from_slice(companion_identity);
    message.extend_from_slice(phone_identity_public);
    let key = parse_public(companion_identity).map_err(|_| rejected("bad identity key"))?;
    if key.verify_signature(&message, device_signature) {
        Ok(())
    } else {
        Err(rejected("device signature does not verify"))
    }
}

/// What the phone computes when a code is typed: its own ephemeral key,
/// wrapped with the typed code, and the companion's ephemeral key unwrapped
/// with it. A wrong code unwraps to a different (still valid-looking) key,
/// so the mistake only shows when the companion's key bundle fails to open.
pub(crate) struct PrimaryHello {
    pub(crate) ephemeral: KeyPair,
    pub(crate) wrapped_ephemeral: [u8; 80],
    pub(crate) companion_ephemeral: [u8; 32],
}

/// Runs two PBKDF2 derivations (131 072 rounds each): call off the async
/// threads.
pub(crate) fn primary_hello(wrapped_companion_ephemeral: &[u8], code: &str) -> PrimaryHello {
    let companion_ephemeral =
        PairCodeUtils::decrypt_primary_ephemeral_pub(wrapped_companion_ephemeral, code)
            .unwrap_or([0; 32]);
    let ephemeral = wacore::crypto::generate_curve_key_pair();
    let public: [u8; 32] = ephemeral
        .public_key
        .public_key_bytes()
        .try_into()
        .expect("a Curve25519 public key is 32 bytes");
    let wrapped_ephemeral = PairCodeUtils::encrypt_ephemeral_pub(&public, code);
    PrimaryHello {
        ephemeral,
        wrapped_ephemeral,
        companion_ephemeral,
    }
}

/// Opens the companion's key bundle and derives the ADV secret, as the phone
/// does after `companion_finish`. Any failure here means the code typed on
/// the phone was not the companion's.
pub(crate) fn open_key_bundle(
    hello: &PrimaryHello,
    phone_identity: &KeyPair,
    wrapped_bundle: &[u8],
    companion_identity: &[u8; 32],
) -> Result<[u8; 32], PhoneError> {
    if wrapped_bundle.len() < 32 + 12 + 16 {
        return Err(PhoneError::WrongCode);
    }
    let companion_ephemeral =
        parse_public(&hello.companion_ephemeral).map_err(|_| PhoneError::WrongCode)?;
    let ephemeral_shared = hello
        .ephemeral
        .private_key
        .calculate_agreement(&companion_ephemeral)
        .map_err(|_| PhoneError::WrongCode)?;
    let mut bundle_key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &ephemeral_shared,
        Some(&wrapped_bundle[..32]),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut bundle_key,
    )
    .map_err(|_| PhoneError::WrongCode)?;
    let iv: [u8; 12] = wrapped_bundle[32..44]
        .try_into()
        .expect("slice of 12 bytes");
    let mut bundle = Vec::with_capacity(96);
    aes_256_gcm_decrypt(&bundle_key, &iv, b"", &wrapped_bundle[44..], &mut bundle)
        .map_err(|_| PhoneError::WrongCode)?;
    if bundle.len() != 96
        || bundle[..32] != companion_identity[..]
        || bundle[32..64] != *phone_identity.public_key.public_key_bytes()
    {
        return Err(PhoneError::WrongCode);
    }
    let companion_identity_key =
        parse_public(companion_identity).map_err(|_| PhoneError::WrongCode)?;
    let identity_shared = phone_identity
        .private_key
        .calculate_agreement(&companion_identity_key)
        .map_err(|_| PhoneError::WrongCode)?;
    let mut secret_input = Vec::with_capacity(96);
    secret_input.extend_from_slice(&ephemeral_shared);
    secret_input.extend_from_slice(&identity_shared);
    secret_input.extend_from_slice(&bundle[64..96]);
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&secret_input, None, b"adv_secret", &mut adv_secret)
        .map_err(|_| PhoneError::WrongCode)?;
    Ok(adv_secret)
}
