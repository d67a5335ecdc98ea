//! The window itself: it opens on the app shell, uses the data folder it was
//! given, and enforces its content security policy.

use crate::harness::AppSession;
use crate::selectors::{APP_TITLE, DATA_FOLDER_FOOTER, EMPTY_LIST_HEADING};

#[tokio::test]
async fn window_opens_on_the_empty_device_list() {
    let app = AppSession::start().await;

    assert_eq!(
        app.client.title().await.expect("window title"),
        "WA Device Admin"
    );
    assert_eq!(app.text_of(APP_TITLE).await, "WA Device Admin");
    assert_eq!(app.text_of(EMPTY_LIST_HEADING).await, "No devices yet");

    let footer = app.text_of(DATA_FOLDER_FOOTER).await;
    let expected = app.data_dir.display().to_string();
    assert!(
        footer.ends_with(&expected),
        "footer {footer:?} names the data folder {expected:?}"
    );

    let shot = app.screenshot("window-empty").await;
    let png = std::fs::read(&shot).expect("read the screenshot back");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");

    app.close().await;
}

#[tokio::test]
async fn data_folder_is_created_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let app = AppSession::start().await;
    let mode = std::fs::metadata(&app.data_dir)
        .expect("the app created its data folder")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "data folder mode is {:o}",
        mode & 0o777
    );
    app.close().await;
}

#[tokio::test]
async fn content_security_policy_blocks_remote_loads() {
    let app = AppSession::start().await;
    // An image from any origin but the app's own must be refused by the CSP,
    // which reports the violated directive before any network is touched.
    let verdict = app
        .client
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            document.addEventListener("securitypolicyviolation", (e) => done(e.effectiveDirective), { once: true });
            const img = document.createElement("img");
            img.src = "http://127.0.0.1:9/probe.png";
            document.body.appendChild(img);
            setTimeout(() => done("not blocked"), 5000);
            "#,
            vec![],
        )
        .await
        .expect("run the probe script");
    assert_eq!(verdict.as_str(), Some("img-src"));
    app.close().await;
}
