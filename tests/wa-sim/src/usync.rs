//! Answers to `<iq xmlns="usync">`: the user-sync queries clients send for
//! device lists (whatsapp-rust asks for its own account's after every
//! login), LIDs and whether a number is on WhatsApp. Shapes as WhatsApp
//! sends them, read from whatsmeow's and Baileys' usync parsers and
//! whatsapp-rust's.
//!
//! The simulator knows only its own phones' accounts. A user that is not
//! one of them is left out of the list, except that the `contact` protocol
//! says so (`type="out"`), as WhatsApp does for a number not on WhatsApp.

use wacore::libsignal::protocol::KeyPair;
use wacore::messages::MessageUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent};

use crate::phone_crypto::{self, KeyIndexList};
use crate::sim::PhoneRecord;

/// The usync protocols answered; a query asking for any other is refused
/// as a whole rather than answered in part.
const MODELLED_PROTOCOLS: [&str; 3] = ["devices", "lid", "contact"];

/// How a query names a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserKey<'a> {
    /// Phone number, digits only.
    Number(&'a str),
    /// LID user part.
    Lid(&'a str),
}

/// One simulated account as usync describes it.
pub(crate) struct Account {
    pub(crate) number: String,
    pub(crate) lid_user: String,
    /// Companions linked now: device id and the key index the phone issued
    /// it. The phone itself (device 0) is always listed and is not in here.
    pub(crate) companions: Vec<(u16, u32)>,
    pub(crate) phone_identity: KeyPair,
    pub(crate) key_index_list: KeyIndexList,
}

impl Account {
    /// The account of the phone for `number`, as it stands now.
    pub(crate) fn of(number: &str, phone: &PhoneRecord) -> Self {
        let companions: Vec<(u16, u32)> = phone
            .companions()
            .iter()
            .map(|(device, linked)| (*device, linked.key_index))
            .collect();
        Self {
            number: number.to_string(),
            lid_user: phone.lid_user.clone(),
            key_index_list: KeyIndexList {
                adv_raw_id: phone.adv_raw_id,
                timestamp: phone.device_list_changed_at(),
                current_index: phone.current_key_index(),
                valid_indexes: companions.iter().map(|(_, index)| *index).collect(),
            },
            companions,
            phone_identity: phone.identity.clone(),
        }
    }

    /// The device list's hash, which a client sends back as `device_hash`
    /// to be told "unchanged" by being left out of the answer. Clients only
    /// compare it; the simulator computes it as WhatsApp's participant-list
    /// hash over the account's device JIDs, so it changes exactly when the
    /// list does. One account has one list, so its PN and its LID get the
    /// same hash (a client may keep one record for both).
    fn device_list_hash(&self) -> Result<String, anyhow::Error> {
        let devices: Vec<Jid> = std::iter::once(0)
            .chain(self.companions.iter().map(|(device, _)| *device))
            .map(|device| Jid::pn_device(self.number.as_str(), device))
            .collect();
        MessageUtils::participant_list_hash(&devices)
    }

    fn devices_node(&self) -> Result<Node, Refusal> {
        let hash = self.device_list_hash().map_err(Refusal::internal)?;
        let signed =
            phone_crypto::signed_key_index_list(&self.phone_identity, &self.key_index_list)
                .map_err(Refusal::internal)?;
        let devices = std::iter::once(NodeBuilder::new("device").attr("id", "0").build()).chain(
            self.companions.iter().map(|(device, key_index)| {
                NodeBuilder::new("device")
                    .attr("id", device.to_string())
                    .attr("key-index", key_index.to_string())
                    .build()
            }),
        );
        Ok(NodeBuilder::new("devices")
            .children([
                NodeBuilder::new("device-list")
                    .attr("hash", hash)
                    .children(devices)
                    .build(),
                NodeBuilder::new("key-index-list")
                    .attr("ts", self.key_index_list.timestamp.to_string())
                    .bytes(signed)
                    .build(),
            ])
            .build())
    }
}

/// Why a usync query gets an IQ error instead of a list.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// 400: the query is not a usync query.
    BadRequest(&'static str),
    /// 501: a mode or protocol the simulator does not model, named.
    NotModelled(String),
    /// 500: the phone could not sign its key-index list.
    Internal(String),
}

impl Refusal {
    fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

/// A usync answer and what it said, for the simulator's event log.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The `<usync>` element of the IQ result.
    pub(crate) usync: Node,
    pub(crate) protocols: Vec<String>,
    /// Users listed in the answer.
    pub(crate) listed: Vec<String>,
    /// Users whose device list the client already has (its `device_hash`
    /// matched), left out of the answer.
    pub(crate) unchanged: Vec<String>,
}

/// Answers the `<usync>` element of a query. `account` finds a simulated
/// account by the key a user is named with.
pub(crate) fn answer(
    usync: &Node,
    account: impl Fn(UserKey<'_>) -> Option<Account>,
) -> Result<Answer, Refusal> {
    let mode = attr(usync, "mode").ok_or(Refusal::BadRequest("usync without a mode"))?;
    if mode != "query" {
        return Err(Refusal::NotModelled(format!("mode {mode}")));
    }
    let protocols: Vec<String> = usync
        .get_optional_child("query")
        .ok_or(Refusal::BadRequest("usync without a query"))?
        .children()
        .unwrap_or_default()
        .iter()
        .map(|p| p.tag.to_string())
        .collect();
    if protocols.is_empty() {
        return Err(Refusal::BadRequest("usync query without a protocol"));
    }
    if let Some(other) = protocols
        .iter()
        .find(|p| !MODELLED_PROTOCOLS.contains(&p.as_str()))
    {
        return Err(Refusal::NotModelled(format!("protocol {other}")));
    }
    let asks = |protocol: &str| protocols.iter().any(|p| p == protocol);
    let users = usync
        .get_optional_child("list")
        .ok_or(Refusal::BadRequest("usync without a list"))?
        .children()
        .unwrap_or_default();

    let mut listed = Vec::new();
    let mut unchanged = Vec::new();
    let mut list = Vec::new();
    for user in users.iter().filter(|u| u.tag == "user") {
        let queried_jid = attr(user, "jid")
            .map(|jid| {
                jid.parse::<Jid>()
                    .map_err(|_| Refusal::BadRequest("unparsable user jid"))
            })
            .transpose()?
            .map(|jid| jid.to_non_ad());
        let contact = user.get_optional_child("contact");
        let number_in_contact = contact.and_then(content_text).map(|text| {
            text.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        });
        let key = match (&queried_jid, &number_in_contact) {
            (Some(jid), _) if jid.is_lid() => Some(UserKey::Lid(&jid.user)),
            (Some(jid), _) if jid.is_pn() => Some(UserKey::Number(&jid.user)),
            (Some(_), _) => None,
            (None, Some(number)) if !number.is_empty() => Some(UserKey::Number(number)),
            (None, _) => None,
        };
        let found = key.and_then(&account);

        let Some(found) = found else {
            if asks("contact") {
                let mut out = NodeBuilder::new("user");
                if let Some(jid) = &queried_jid {
                    out = out.attr("jid", jid.clone());
                }
                list.push(out.children([contact_node("out", contact)]).build());
                listed.push(describe(queried_jid.as_ref(), number_in_contact.as_deref()));
            }
            continue;
        };

        let user_jid = queried_jid
            .clone()
            .unwrap_or_else(|| Jid::pn(found.number.as_str()));
        let mut children = Vec::new();
        if asks("devices") {
            let hint = user
                .get_optional_child("devices")
                .and_then(|d| attr(d, "device_hash"));
            let current = found.device_list_hash().map_err(Refusal::internal)?;
            if hint.as_deref() == Some(current.as_str()) {
                unchanged.push(user_jid.to_string());
            } else {
                children.push(found.devices_node()?);
            }
        }
        if asks("lid") {
            children.push(
                NodeBuilder::new("lid")
                    .attr("val", Jid::lid(found.lid_user.as_str()))
                    .build(),
            );
        }
        if asks("contact") {
            children.push(contact_node("in", contact));
        }
        if children.is_empty() {
            continue;
        }
        listed.push(user_jid.to_string());
        list.push(
            NodeBuilder::new("user")
                .attr("jid", user_jid)
                .children(children)
                .build(),
        );
    }

    let mut out = NodeBuilder::new("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(value) = attr(usync, key) {
            out = out.attr(key, value);
        }
    }
    Ok(Answer {
        usync: out
            .children([NodeBuilder::new("list").children(list).build()])
            .build(),
        protocols,
        listed,
        unchanged,
    })
}

/// `<contact type="in"|"out">` echoing what the query asked about.
fn contact_node(kind: &'static str, asked: Option<&Node>) -> Node {
    let node = NodeBuilder::new("contact").attr("type", kind);
    match asked.and_then(content_text) {
        Some(text) if !text.is_empty() => node.string_content(text).build(),
        _ => node.build(),
    }
}

fn describe(jid: Option<&Jid>, number: Option<&str>) -> String {
    match (jid, number) {
        (Some(jid), _) => jid.to_string(),
        (None, Some(number)) => format!("+{number}"),
        (None, None) => "an unnamed user".to_string(),
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().to_string())
}

fn content_text(node: &Node) -> Option<String> {
    match &node.content {
        Some(NodeContent::String(s)) => Some(s.to_string()),
        Some(NodeContent::Bytes(b)) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use wacore::iq::spec::IqSpec;
    use wacore::iq::usync::{DeviceListSpec, LidQuerySpec};
    use wacore_binary::NodeContent;
    use waproto::buffa::Message as _;
    use waproto::whatsapp as wa;

    use super::*;

    const NUMBER: &str = "15551234567";
    const LID_USER: &str = "123456789012345";

    fn account() -> Account {
        Account {
            number: NUMBER.to_string(),
            lid_user: LID_USER.to_string(),
            // Key index 1 went to a companion since unlinked.
            companions: vec![(2, 2), (5, 4)],
            phone_identity: wacore::crypto::generate_curve_key_pair(),
            key_index_list: KeyIndexList {
                adv_raw_id: 77,
                timestamp: 1_700_000_000,
                current_index: 4,
                valid_indexes: vec![2, 4],
            },
        }
    }

    fn lookup(account: &Account) -> impl Fn(UserKey<'_>) -> Option<Account> + '_ {
        move |key| {
            let matches = match key {
                UserKey::Number(number) => number == account.number,
                UserKey::Lid(lid) => lid == account.lid_user,
            };
            matches.then(|| Account {
                number: account.number.clone(),
                lid_user: account.lid_user.clone(),
                companions: account.companions.clone(),
                phone_identity: account.phone_identity.clone(),
                key_index_list: KeyIndexList {
                    valid_indexes: account.key_index_list.valid_indexes.clone(),
                    ..account.key_index_list
                },
            })
        }
    }

    /// The `<usync>` element of the query a client spec sends.
    fn query_of(spec: &impl IqSpec) -> Node {
        match spec.build_iq().content {
            Some(NodeContent::Nodes(nodes)) => nodes.into_iter().next().unwrap(),
            other => panic!("no usync element in {other:?}"),
        }
    }

    fn iq_result(usync: Node) -> Node {
        NodeBuilder::new("iq")
            .attr("type", "result")
            .attr("id", "1")
            .children([usync])
            .build()
    }

    fn verifies(signed: &[u8], key: &KeyPair) -> bool {
        let signed = wa::ADVSignedKeyIndexList::decode_from_slice(signed).unwrap();
        // WhatsApp's ADV_PREFIX_KEY_INDEX_LIST_ACCOUNT_SIGNATURE, then details.
        let message = [&[6u8, 2][..], signed.details.as_deref().unwrap()].concat();
        key.public_key
            .verify_signature(&message, signed.account_signature.as_deref().unwrap())
    }

    #[test]
    fn the_own_device_list_query_is_answered_as_whatsapp_rust_reads_it() {
        let account = account();
        let own = [Jid::pn(NUMBER), Jid::lid(LID_USER)];
        let spec = DeviceListSpec::with_hashes(own.to_vec(), "sid-1", HashMap::new());
        let answer = answer(&query_of(&spec), lookup(&account)).unwrap();
        assert_eq!(answer.protocols, vec!["devices"]);
        assert_eq!(
            answer.listed,
            own.iter().map(Jid::to_string).collect::<Vec<_>>()
        );
        assert!(answer.unchanged.is_empty());

        let parsed = spec
            .parse_response(&iq_result(answer.usync).as_node_ref())
            .unwrap();
        assert_eq!(parsed.device_lists.len(), 2);
        for list in &parsed.device_lists {
            let devices: Vec<(u16, Option<u32>)> = list
                .devices
                .iter()
                .map(|d| (d.device, d.key_index))
                .collect();
            assert_eq!(devices, vec![(0, None), (2, Some(2)), (5, Some(4))]);
            assert!(list.phash.as_deref().unwrap().starts_with("2:"));
            let signed = list.key_index_bytes.as_deref().unwrap();
            let decoded = wacore::adv::decode_key_index_list(signed).unwrap();
            assert_eq!(decoded.raw_id, 77);
            assert_eq!(decoded.timestamp, 1_700_000_000);
            assert_eq!(decoded.current_index, 4);
            assert_eq!(decoded.valid_indexes, vec![2, 4]);
            assert!(verifies(signed, &account.phone_identity));
            assert!(!verifies(
                signed,
                &wacore::crypto::generate_curve_key_pair()
            ));
        }
    }

    #[test]
    fn a_current_device_hash_leaves_the_user_out_and_a_stale_one_does_not() {
        let account = account();
        let first = DeviceListSpec::new(vec![Jid::pn(NUMBER)], "sid-1");
        let parsed = first
            .parse_response(
                &iq_result(answer(&query_of(&first), lookup(&account)).unwrap().usync)
                    .as_node_ref(),
            )
            .unwrap();
        let hash = parsed.device_lists[0].phash.clone().unwrap();

        let hints =
            |hash: &str| HashMap::from([(Jid::pn(NUMBER), (hash.to_string(), 1_700_000_000i64))]);
        let current = DeviceListSpec::with_hashes(vec![Jid::pn(NUMBER)], "sid-2", hints(&hash));
        let unchanged = answer(&query_of(&current), lookup(&account)).unwrap();
        assert!(unchanged.listed.is_empty());
        assert_eq!(unchanged.unchanged, vec![Jid::pn(NUMBER).to_string()]);
        let parsed = current
            .parse_response(&iq_result(unchanged.usync).as_node_ref())
            .unwrap();
        assert!(parsed.device_lists.is_empty());

        let mut relinked = account;
        relinked.companions.push((6, 5));
        let stale = DeviceListSpec::with_hashes(vec![Jid::pn(NUMBER)], "sid-3", hints(&hash));
        let changed = answer(&query_of(&stale), lookup(&relinked)).unwrap();
        assert_eq!(changed.listed, vec![Jid::pn(NUMBER).to_string()]);
    }

    #[test]
    fn the_lid_query_maps_the_number_to_the_account_lid() {
        let account = account();
        let spec = LidQuerySpec::new(vec![Jid::pn(NUMBER), Jid::pn("15550000000")], "sid-1");
        let answer = answer(&query_of(&spec), lookup(&account)).unwrap();
        // The number the simulator does not know is left out.
        assert_eq!(answer.listed, vec![Jid::pn(NUMBER).to_string()]);
        let parsed = spec
            .parse_response(&iq_result(answer.usync).as_node_ref())
            .unwrap();
        assert_eq!(parsed.lid_mappings.len(), 1);
        assert_eq!(parsed.lid_mappings[0].phone_number, NUMBER);
        assert_eq!(parsed.lid_mappings[0].lid, LID_USER);
    }

    #[test]
    fn contact_says_in_or_out_and_other_protocols_are_not_modelled() {
        let account = account();
        let query = |protocols: &[&'static str], users: Vec<Node>| {
            NodeBuilder::new("usync")
                .attr("sid", "s")
                .attr("mode", "query")
                .attr("context", "interactive")
                .children([
                    NodeBuilder::new("query")
                        .children(protocols.iter().map(|p| NodeBuilder::new(p).build()))
                        .build(),
                    NodeBuilder::new("list").children(users).build(),
                ])
                .build()
        };
        let by_number = |number: &str| {
            NodeBuilder::new("user")
                .children([NodeBuilder::new("contact")
                    .string_content(format!("+{number}"))
                    .build()])
                .build()
        };
        let answered = answer(
            &query(
                &["contact"],
                vec![by_number(NUMBER), by_number("15550000000")],
            ),
            lookup(&account),
        )
        .unwrap();
        let users = answered
            .usync
            .get_optional_child("list")
            .unwrap()
            .children()
            .unwrap()
            .to_vec();
        let kinds: Vec<(Option<String>, String)> = users
            .iter()
            .map(|u| {
                let contact = u.get_optional_child("contact").unwrap();
                (attr(u, "jid"), attr(contact, "type").unwrap())
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Some(Jid::pn(NUMBER).to_string()), "in".to_string()),
                (None, "out".to_string()),
            ]
        );

        let refused = answer(
            &query(&["devices", "status"], vec![by_number(NUMBER)]),
            lookup(&account),
        )
        .unwrap_err();
        assert!(
            matches!(&refused, Refusal::NotModelled(what) if what == "protocol status"),
            "{refused:?}"
        );
    }
}
