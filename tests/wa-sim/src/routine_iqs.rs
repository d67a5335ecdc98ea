//! Answers to the routine queries clients send after every login: the
//! key-bundle digest (`encrypt`/`digest`), A/B props (`abt`), the blocklist
//! and the privacy settings. Shapes as WhatsApp sends them (read from
//! whatsmeow, Baileys and whatsapp-rust's parsers).

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent};

/// Signal type byte of Curve25519 keys, as the upload and digest carry it.
const KEY_TYPE_DJB: u8 = 5;

/// The key bundle a device registered (`<iq xmlns="encrypt"><registration>`),
/// kept for the digest the device later asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyBundle {
    registration_id: Vec<u8>,
    identity: Vec<u8>,
    signed_pre_key: SignedPreKey,
    /// One-time pre-keys in upload order: 3-byte id and public key.
    pre_keys: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SignedPreKey {
    id: Vec<u8>,
    value: Vec<u8>,
    signature: Vec<u8>,
}

impl KeyBundle {
    pub(crate) fn pre_key_count(&self) -> u32 {
        u32::try_from(self.pre_keys.len()).unwrap_or(u32::MAX)
    }

    /// Merges an upload: every upload repeats the registration id, identity
    /// and current signed pre-key, and adds one-time pre-keys (a key id
    /// uploaded again replaces the old key).
    pub(crate) fn absorb(&mut self, upload: KeyBundle) {
        self.registration_id = upload.registration_id;
        self.identity = upload.identity;
        self.signed_pre_key = upload.signed_pre_key;
        for (id, value) in upload.pre_keys {
            match self.pre_keys.iter_mut().find(|(known, _)| *known == id) {
                Some(slot) => slot.1 = value,
                None => self.pre_keys.push((id, value)),
            }
        }
    }

    /// A rotated signed pre-key (`<iq xmlns="encrypt"><rotate><skey>`).
    pub(crate) fn rotate(&mut self, rotate: &Node) -> bool {
        match rotate.get_optional_child("skey").and_then(signed_pre_key) {
            Some(skey) => {
                self.signed_pre_key = skey;
                true
            }
            None => false,
        }
    }

    /// Parses the `<registration>`-style upload IQ; `None` if a required
    /// part is missing or malformed.
    pub(crate) fn from_upload(iq: &Node) -> Option<KeyBundle> {
        let registration_id = bytes(iq.get_optional_child("registration")?)?;
        let identity = bytes(iq.get_optional_child("identity")?)?;
        let key_type = bytes(iq.get_optional_child("type")?)?;
        if registration_id.len() != 4 || identity.len() != 32 || key_type != [KEY_TYPE_DJB] {
            return None;
        }
        let signed_pre_key = signed_pre_key(iq.get_optional_child("skey")?)?;
        let mut pre_keys = Vec::new();
        for key in iq
            .get_optional_child("list")?
            .children()
            .unwrap_or_default()
        {
            let id = bytes(key.get_optional_child("id")?)?;
            let value = bytes(key.get_optional_child("value")?)?;
            if id.len() != 3 || value.len() != 32 {
                return None;
            }
            pre_keys.push((id, value));
        }
        Some(KeyBundle {
            registration_id,
            identity,
            signed_pre_key,
            pre_keys,
        })
    }

    /// `<digest>`: the bundle the server holds, and a SHA-1 over identity,
    /// signed pre-key, its signature and every listed pre-key, which the
    /// client recomputes from its own store.
    pub(crate) fn digest(&self) -> Node {
        let pre_key_values: Vec<&[u8]> = self.pre_keys.iter().map(|(_, v)| v.as_slice()).collect();
        let hash = wacore::prekeys::compute_key_bundle_digest(
            &self.identity,
            &self.signed_pre_key.value,
            &self.signed_pre_key.signature,
            &pre_key_values,
        );
        let list = self
            .pre_keys
            .iter()
            .map(|(id, _)| NodeBuilder::new("id").bytes(id.clone()).build());
        NodeBuilder::new("digest")
            .children([
                NodeBuilder::new("type").bytes(vec![KEY_TYPE_DJB]).build(),
                NodeBuilder::new("registration")
                    .bytes(self.registration_id.clone())
                    .build(),
                NodeBuilder::new("identity")
                    .bytes(self.identity.clone())
                    .build(),
                NodeBuilder::new("skey")
                    .children([
                        NodeBuilder::new("id")
                            .bytes(self.signed_pre_key.id.clone())
                            .build(),
                        NodeBuilder::new("value")
                            .bytes(self.signed_pre_key.value.clone())
                            .build(),
                        NodeBuilder::new("signature")
                            .bytes(self.signed_pre_key.signature.clone())
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("list").children(list).build(),
                NodeBuilder::new("hash").bytes(hash).build(),
            ])
            .build()
    }
}

fn signed_pre_key(skey: &Node) -> Option<SignedPreKey> {
    let id = bytes(skey.get_optional_child("id")?)?;
    let value = bytes(skey.get_optional_child("value")?)?;
    let signature = bytes(skey.get_optional_child("signature")?)?;
    (id.len() == 3 && value.len() == 32 && signature.len() == 64).then_some(SignedPreKey {
        id,
        value,
        signature,
    })
}

fn bytes(node: &Node) -> Option<Vec<u8>> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b.clone()),
        _ => None,
    }
}

/// `<props>` for `<iq xmlns="abt"><props protocol="1" [hash]>`: the
/// simulator runs no experiments, so the list is empty; `hash` names that
/// (empty) configuration and `refresh` is how many seconds a client may
/// keep it (WhatsApp's is a day).
pub(crate) fn ab_props() -> Node {
    NodeBuilder::new("props")
        .attr("protocol", "1")
        .attr("ab_key", "wa-sim")
        .attr("hash", "0")
        .attr("refresh", "86400")
        .attr("delta_update", "false")
        .build()
}

/// `<list>` for `<iq xmlns="blocklist" type="get">`: nobody is blocked.
pub(crate) fn blocklist() -> Node {
    NodeBuilder::new("list").build()
}

/// `<privacy>` for `<iq xmlns="privacy"><privacy/>`: one `<category>` per
/// setting, with a new account's defaults.
pub(crate) fn privacy_settings() -> Node {
    const DEFAULTS: [(&str, &str); 8] = [
        ("last", "all"),
        ("online", "all"),
        ("profile", "all"),
        ("status", "contacts"),
        ("groupadd", "all"),
        ("readreceipts", "all"),
        ("calladd", "all"),
        ("messages", "all"),
    ];
    NodeBuilder::new("privacy")
        .children(DEFAULTS.iter().map(|(name, value)| {
            NodeBuilder::new("category")
                .attr("name", *name)
                .attr("value", *value)
                .build()
        }))
        .build()
}
