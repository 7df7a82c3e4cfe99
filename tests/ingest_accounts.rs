//! Tracked data and the account around it: `/account/usage` counts stored pageviews, the
//! monthly pageview limit drops pageviews over it as `quota`, and deleting a website or an
//! account deletes its tracked data.

mod common;

use common::cli::{assert_success, run};
use common::ingest::{CHROME, collect, count, dropped, pageview, website};
use common::{Sandbox, Server, envelope};
use serde_json::json;

const EMAIL: &str = "owner@example.com";

#[test]
fn usage_counts_pageviews_and_the_limit_drops_the_ones_over_it() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup(EMAIL);
    let site = website(&server, &session, "example.com", "UTC");
    assert_success(&run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            EMAIL,
            "--pageviews-per-month",
            "3",
        ],
    ));
    let mut stored = 0;
    for i in 0..5 {
        let resp = collect(
            &server,
            &pageview(&site, &format!("https://example.com/p{i}")),
            &format!("198.51.100.{}", 10 + i),
            CHROME,
        );
        assert_eq!(resp.status(), 202);
        match dropped(&resp).as_deref() {
            None => stored += 1,
            Some("quota") => {}
            other => panic!("unexpected drop {other:?}"),
        }
    }
    assert_eq!(stored, 3, "the limit is 3 pageviews a month");
    assert_eq!(count(&sb, "pageviews"), 3);
    // Events are not pageviews: still stored over the pageview limit.
    let event = json!({"type": "event", "websiteId": site, "url": "https://example.com/",
                       "name": "Signup"});
    let resp = collect(&server, &event, "198.51.100.50", CHROME);
    assert_eq!((resp.status().as_u16(), dropped(&resp)), (202, None));

    let (status, body) = envelope(
        session
            .client
            .get(server.api("/account/usage"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["pageviews"]["used"], 3);
    assert_eq!(body["data"]["pageviews"]["limit"], 3);
    assert_eq!(body["data"]["pageviews"]["percentage"], 100.0);
}

#[test]
fn deleting_a_website_or_its_account_deletes_its_tracked_data() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup(EMAIL);
    let kept = website(&server, &session, "kept.example", "UTC");
    let gone = website(&server, &session, "gone.example", "UTC");
    for (site, domain) in [(&kept, "kept.example"), (&gone, "gone.example")] {
        for kind in ["pageview", "event"] {
            let body = json!({"type": kind, "websiteId": site, "url": format!("https://{domain}/"),
                              "name": "Signup"});
            let resp = collect(&server, &body, "198.51.100.7", CHROME);
            assert_eq!((resp.status().as_u16(), dropped(&resp)), (202, None));
        }
    }
    assert_eq!(
        (
            count(&sb, "pageviews"),
            count(&sb, "events"),
            count(&sb, "visits")
        ),
        (2, 2, 2)
    );
    let (status, _) = envelope(
        session
            .client
            .delete(server.api(&format!("/websites/{gone}")))
            .header("x-csrf-token", &session.csrf)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        (
            count(&sb, "pageviews"),
            count(&sb, "events"),
            count(&sb, "visits")
        ),
        (1, 1, 1),
        "only the kept website's data is left"
    );
    // The deleted website's events are now refused as unknown.
    let resp = collect(
        &server,
        &pageview(&gone, "https://gone.example/"),
        "198.51.100.7",
        CHROME,
    );
    assert_eq!(dropped(&resp).as_deref(), Some("unknown-website"));

    drop(server);
    assert_success(&run(&sb, &["users", "remove", "--email", EMAIL]));
    assert_eq!(
        (
            count(&sb, "pageviews"),
            count(&sb, "events"),
            count(&sb, "visits"),
            count(&sb, "sites")
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_website_deleted_from_the_shell_is_dropped_as_unknown_not_an_error() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup(EMAIL);
    let site = website(&server, &session, "example.com", "UTC");
    let send = || {
        collect(
            &server,
            &pageview(&site, "https://example.com/"),
            "198.51.100.7",
            CHROME,
        )
    };
    // The first pageview puts the website in the server's cache.
    let resp = send();
    assert_eq!((resp.status().as_u16(), dropped(&resp)), (202, None));
    assert_success(&run(&sb, &["users", "remove", "--email", EMAIL]));
    let resp = send();
    assert_eq!(resp.status(), 202);
    assert_eq!(dropped(&resp).as_deref(), Some("unknown-website"));
    assert_eq!(count(&sb, "pageviews"), 0);
}
