//! What only the core's tests share: the keyring entry names of a data
//! folder, for the tests that look at the keyring directly, and tests run in
//! a child process with an environment of their own.

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

/// Runs the ignored test `test` of this binary in a child process, started
/// by `command` (given the binary and its arguments) with
/// `WA_DEVICE_CORE_TEST_CHILD=1`, and fails unless it passed.
pub fn run_child_test(
    test: &str,
    command: impl FnOnce(&std::path::Path, &[&str]) -> std::process::Command,
) {
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        test,
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let output = command(&exe, &args)
        .env("WA_DEVICE_CORE_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child test {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether this process is a child started by [`run_child_test`].
pub fn assert_child_test() {
    assert_eq!(
        std::env::var("WA_DEVICE_CORE_TEST_CHILD").as_deref(),
        Ok("1"),
        "run by its parent test, not alone"
    );
}
