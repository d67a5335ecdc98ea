//! The keyring entry names of a data folder, for the tests that look at the
//! keyring directly.

/// The keyring entry of device `id` of the data folder `data` (entries are
/// named under the folder's scope).
pub fn key_name(data: &std::path::Path, id: &wa_device_core::DeviceId) -> String {
    folder_names(data).device(id)
}

/// The keyring entry of the pending revocation of `jid` in `data`.
pub fn revocation_key(data: &std::path::Path, jid: &str) -> String {
    folder_names(data).revocation(jid)
}

fn folder_names(data: &std::path::Path) -> wa_device_core::secrets::KeyringNames {
    wa_device_core::secrets::KeyringNames::of_folder(&wa_device_core::files::DataLayout::new(
        data.to_path_buf(),
    ))
    .unwrap()
    .expect("the service created the folder's keyring scope")
}
