//! The console's operator pages through real HTTP, as a browser drives them: only operators see them; accounts,
//! clients, resources, signing keys and the audit log are listed, searched and paged; keys are rotated and
//! accounts and clients disabled from the pages, in the operator's name in the audit log; a form without the
//! session's CSRF token changes nothing.

use crate::both_engines;
use crate::harness::TestApp;
use crate::oauth_agent::{
    Agent, PASSWORD, account_with, assert_page_headers, hidden, location, param, unescape,
};
use keyward::service::accounts::AccountInput;
use keyward::service::admin::{Actor, ClientInput};
use reqwest::StatusCode;

/// Every operator page.
const PAGES: [&str; 5] = [
    "/console/admin/accounts",
    "/console/admin/clients",
    "/console/admin/resources",
    "/console/admin/keys",
    "/console/admin/audit",
];

const OPERATOR: &str = "operator@example.com";
const SELLER: &str = "seller@example.com";
const BUYER: &str = "buyer@example.com";

/// Creates an account with `role`; returns its id.
async fn account(app: &TestApp, email: &str, role: &str) -> String {
    account_with(
        app,
        AccountInput {
            email: Some(email.into()),
            role: Some(role.into()),
            ..Default::default()
        },
    )
    .await
}

/// Creates a client named `name`; returns its id.
async fn client(app: &TestApp, name: &str) -> String {
    let (view, _) = app
        .app
        .admin
        .client_create(
            &Actor::cli(),
            ClientInput {
                name: Some(name.into()),
                resources: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    view.client_id
}

/// A browser signed in as `email`.
async fn signed_in(app: &TestApp, email: &str) -> Agent {
    let agent = Agent::new(app);
    let r = agent.login_with(email, PASSWORD, PAGES[0]).await;
    assert_eq!(location(&r), PAGES[0], "{email} signs in");
    agent
}

/// A page that must answer 200: its HTML.
async fn page(agent: &Agent, path: &str) -> String {
    let r = agent.get(path).await;
    let status = r.status();
    let html = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {html}");
    html
}

/// A page's table (empty when it has none): what the list shows, without the page's hints and forms.
fn table(html: &str) -> &str {
    match (html.find("<table"), html.find("</table>")) {
        (Some(a), Some(b)) => &html[a..b],
        _ => "",
    }
}

/// Whether a list's table shows the id (in a cell, not only in its forms' fields).
fn listed(html: &str, id: &str) -> bool {
    table(html).contains(&format!("<code>{id}</code>"))
}

/// The `href` of the link with `id`, unescaped.
fn link(html: &str, id: &str) -> Option<String> {
    let end = html.find(&format!("\" id=\"{id}\""))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    Some(unescape(&html[start..end]))
}

both_engines!(operator_pages_are_for_operators_only, |app| {
    let seller = account(&app, SELLER, "user").await;
    account(&app, OPERATOR, "operator").await;

    // An account holder: the console is theirs, the operator pages are not (nor their links).
    let user = signed_in(&app, SELLER).await;
    let keys = page(&user, "/console/keys").await;
    assert!(!keys.contains("/console/admin/"), "{keys}");
    for path in PAGES.into_iter().chain([
        "/console/admin/accounts?q=seller",
        "/console/admin/audit?before=9",
    ]) {
        let r = user.get(path).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.text().await.unwrap().contains("Operators only"), "{path}");
    }
    // Its forms are refused too, even with the session's own CSRF token.
    let csrf = hidden(&keys, "csrf");
    let before = app.app.admin.keys_list().len();
    for (path, form) in [
        (
            format!("/console/admin/accounts/{seller}/disable"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/console/admin/keys/rotate".into(),
            vec![("csrf", csrf.as_str()), ("alg", "")],
        ),
    ] {
        let r = user.post(&path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert!(app.app.accounts.account_get(&seller).await.unwrap().enabled);
    assert_eq!(app.app.admin.keys_list().len(), before);

    // Not signed in: the login page, which comes back here.
    let to = location(&Agent::new(&app).get(PAGES[3]).await);
    assert!(to.starts_with("/login?"), "{to}");
    assert_eq!(param(&to, "next").as_deref(), Some(PAGES[3]));

    // The operator sees every page, and the links to them.
    let op = signed_in(&app, OPERATOR).await;
    for path in PAGES {
        let r = op.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_page_headers(r.headers(), path);
        let html = r.text().await.unwrap();
        for to in PAGES {
            assert!(
                html.contains(&format!("href=\"{to}\"")),
                "{path} links {to}"
            );
        }
    }
});

both_engines!(operator_lists_are_searched_and_paged, |app| {
    let seller = account(&app, SELLER, "user").await;
    account(&app, BUYER, "user").await;
    let operator = account(&app, OPERATOR, "operator").await;
    app.resource("https://api.example.com", &["orders:read", "orders:write"])
        .await;
    app.resource("https://billing.example.com", &["invoices:read"])
        .await;
    let shop = client(&app, "Shop sync").await;
    for i in 0..52 {
        client(&app, &format!("bulk-{i:02}")).await;
    }
    let op = signed_in(&app, OPERATOR).await;

    // Accounts: all of them, then a search that narrows the list and stays in the box.
    let html = page(&op, "/console/admin/accounts").await;
    for shown in [
        SELLER,
        BUYER,
        seller.as_str(),
        operator.as_str(),
        "operator",
        "user",
    ] {
        assert!(html.contains(shown), "{shown} missing");
    }
    assert!(html.contains("<caption class=\"visually-hidden\">"));
    assert!(html.contains("<label for=\"q\">Search</label>"));
    assert!(html.contains(&format!("aria-label=\"Disable {SELLER}\"")));
    assert!(link(&html, "next-page").is_none() && link(&html, "first-page").is_none());
    let html = page(&op, "/console/admin/accounts?q=SELLER").await;
    assert!(html.contains(SELLER) && !html.contains(BUYER), "{html}");
    assert!(
        html.contains("value=\"SELLER\""),
        "the search stays in the box"
    );
    let html = page(&op, "/console/admin/accounts?q=nobody").await;
    assert!(html.contains("id=\"no-rows\"") && !html.contains(SELLER));
    // Paging by id: after the first account, the others, and a way back.
    let ids: Vec<(String, String)> = app
        .app
        .accounts
        .accounts_list("", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.account_id, a.email))
        .collect();
    let html = page(&op, &format!("/console/admin/accounts?after={}", ids[0].0)).await;
    assert!(
        !listed(&html, &ids[0].0),
        "{:?} is on the first page",
        ids[0]
    );
    assert!(ids[1..].iter().all(|(id, _)| listed(&html, id)), "{html}");
    assert_eq!(
        link(&html, "first-page").as_deref(),
        Some("/console/admin/accounts")
    );

    // Clients: a search for one, then 52 of a kind over two pages of 50.
    let html = page(&op, "/console/admin/clients?q=shop").await;
    assert!(html.contains(&shop) && html.contains("Shop sync"), "{html}");
    assert!(!html.contains("bulk-"), "{html}");
    assert!(html.contains(&format!("aria-label=\"Disable Shop sync ({shop})\"")));
    let bulk: Vec<String> = app
        .app
        .admin
        .clients_list("", Some("bulk-"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(bulk.len(), 52);
    let html = page(&op, "/console/admin/clients?q=bulk-").await;
    assert_eq!(html.matches("aria-label=\"Disable bulk-").count(), 50);
    assert!(!listed(&html, &shop) && !listed(&html, &bulk[50]));
    assert!(link(&html, "first-page").is_none());
    let next = link(&html, "next-page").expect("a next page");
    assert_eq!(
        next,
        format!("/console/admin/clients?q=bulk-&after={}", bulk[49])
    );
    let html = page(&op, &next).await;
    assert_eq!(html.matches("aria-label=\"Disable bulk-").count(), 2);
    assert!(listed(&html, &bulk[50]) && listed(&html, &bulk[51]) && !listed(&html, &bulk[49]));
    assert!(link(&html, "next-page").is_none());
    assert_eq!(
        link(&html, "first-page").as_deref(),
        Some("/console/admin/clients?q=bulk-")
    );

    // Resources: both, then the one whose identifier or name matches, in any case.
    let html = page(&op, "/console/admin/resources").await;
    for shown in [
        "https://api.example.com",
        "https://billing.example.com",
        "orders:write",
        "15m",
        "ES256",
    ] {
        assert!(html.contains(shown), "{shown} missing");
    }
    let html = page(&op, "/console/admin/resources?q=BILLING").await;
    assert!(
        html.contains("https://billing.example.com") && !html.contains("https://api.example.com")
    );
    assert!(html.contains("value=\"BILLING\""));

    // Signing keys: each with its id and algorithm.
    let html = page(&op, "/console/admin/keys").await;
    let keys = app.app.admin.keys_list();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(html.contains(k["kid"].as_str().unwrap()), "{k}");
    }
    assert!(
        html.contains("<label for=\"alg\">") && html.contains("<select id=\"alg\" name=\"alg\">")
    );

    // The audit log: 54 client creations (the first start's admin client too) over two pages, newest first; a
    // search narrows it.
    let html = page(&op, "/console/admin/audit?q=client.create").await;
    assert_eq!(
        table(&html).matches("<code>client.create</code>").count(),
        50
    );
    assert!(!table(&html).contains("<code>account.create</code>"));
    let newest = app
        .app
        .admin
        .audit_list(None, Some("client.create"), 100)
        .await
        .unwrap();
    assert_eq!(newest.len(), 54);
    assert!(html.find(&newest[0].target) < html.find(&newest[49].target));
    let older = link(&html, "next-page").expect("older entries");
    assert_eq!(
        older,
        format!(
            "/console/admin/audit?q=client.create&before={}",
            newest[49].id
        )
    );
    let html = page(&op, &older).await;
    assert_eq!(
        table(&html).matches("<code>client.create</code>").count(),
        4
    );
    assert!(
        table(&html).contains(&format!("<code>{shop}</code>")),
        "an older creation is on the last page"
    );
    assert_eq!(
        link(&html, "first-page").as_deref(),
        Some("/console/admin/audit?q=client.create")
    );
    let html = page(&op, "/console/admin/audit?q=account.create").await;
    assert_eq!(
        table(&html).matches("<code>account.create</code>").count(),
        3
    );
    assert!(!table(&html).contains("<code>client.create</code>"));
});

both_engines!(operator_rotates_keys_and_disables_from_the_pages, |app| {
    let seller = account(&app, SELLER, "user").await;
    let operator = account(&app, OPERATOR, "operator").await;
    let shop = client(&app, "Shop sync").await;
    let op = signed_in(&app, OPERATOR).await;
    let actor = format!("account:{operator}");

    // Rotating every algorithm, then one: the keys list grows, in the operator's name.
    let html = page(&op, "/console/admin/keys").await;
    let csrf = hidden(&html, "csrf");
    let before = app.app.admin.keys_list().len();
    let r = op
        .post(
            "/console/admin/keys/rotate",
            &[("csrf", &csrf), ("alg", "")],
        )
        .await;
    assert_eq!(location(&r), "/console/admin/keys");
    assert_eq!(app.app.admin.keys_list().len(), before + 3);
    let r = op
        .post(
            "/console/admin/keys/rotate",
            &[("csrf", &csrf), ("alg", "ES256")],
        )
        .await;
    assert_eq!(location(&r), "/console/admin/keys");
    assert_eq!(app.app.admin.keys_list().len(), before + 4);
    let html = page(&op, "/console/admin/keys").await;
    assert!(html.contains("pending"), "the new keys wait to sign");
    let rotations = app
        .app
        .admin
        .audit_list(None, Some("keys.rotate"), 10)
        .await
        .unwrap();
    assert_eq!(rotations.len(), 2);
    assert!(rotations.iter().all(|e| e.actor == actor), "{rotations:?}");
    // An algorithm the server does not sign with is refused, in words.
    let r = op
        .post(
            "/console/admin/keys/rotate",
            &[("csrf", &csrf), ("alg", "HS256")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("alg:"));
    assert_eq!(app.app.admin.keys_list().len(), before + 4);

    // Disabling an account from a searched list returns to that list; enabling it again.
    let html = page(&op, "/console/admin/accounts?q=seller").await;
    assert!(html.contains(&format!("aria-label=\"Disable {SELLER}\"")));
    let disable = format!("/console/admin/accounts/{seller}/disable");
    let form = [("csrf", csrf.as_str()), ("q", "seller"), ("after", "")];
    let r = op.post(&disable, &form).await;
    assert_eq!(location(&r), "/console/admin/accounts?q=seller");
    assert!(!app.app.accounts.account_get(&seller).await.unwrap().enabled);
    let html = page(&op, "/console/admin/accounts?q=seller").await;
    assert!(html.contains(&format!("aria-label=\"Enable {SELLER}\"")));
    let r = op
        .post(&format!("/console/admin/accounts/{seller}/enable"), &form)
        .await;
    assert_eq!(location(&r), "/console/admin/accounts?q=seller");
    assert!(app.app.accounts.account_get(&seller).await.unwrap().enabled);
    let r = op
        .post("/console/admin/accounts/acct_nobody/disable", &form)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Not the operator's own account: that would sign them out with no way back in from here.
    let own = actor.strip_prefix("account:").unwrap();
    let r = op
        .post(&format!("/console/admin/accounts/{own}/disable"), &form)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(app.app.accounts.account_get(own).await.unwrap().enabled);

    // A client likewise.
    let r = op
        .post(
            &format!("/console/admin/clients/{shop}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(location(&r), "/console/admin/clients");
    assert!(!app.app.admin.client_get(&shop).await.unwrap().enabled);
    let html = page(&op, "/console/admin/clients").await;
    assert!(html.contains(&format!("aria-label=\"Enable Shop sync ({shop})\"")));

    // Each change is in the audit log in the operator's name, and the page's search finds them.
    let html = page(&op, &format!("/console/admin/audit?q={seller}")).await;
    assert_eq!(
        table(&html).matches("<code>account.update</code>").count(),
        2
    );
    assert!(html.contains(&format!("<code>{actor}</code>")));
    let html = page(&op, "/console/admin/audit?q=keys.rotate").await;
    assert_eq!(table(&html).matches("<code>keys.rotate</code>").count(), 2);
    assert!(!table(&html).contains("<code>account.update</code>"));
    let html = page(&op, "/console/admin/audit").await;
    for action in [
        "keys.rotate",
        "account.update",
        "client.update",
        "account.create",
    ] {
        assert!(html.contains(&format!("<code>{action}</code>")), "{action}");
    }

    // Without the session's CSRF token (none, or another's), nothing changes.
    let other = signed_in(&app, OPERATOR).await;
    let foreign = hidden(&page(&other, "/console/admin/keys").await, "csrf");
    assert_ne!(foreign, csrf);
    let keys = app.app.admin.keys_list().len();
    let audit = app
        .app
        .admin
        .audit_list(None, None, 1_000)
        .await
        .unwrap()
        .len();
    let rotate: &[(&str, &str)] = &[("alg", "")];
    let targets = [
        (disable.clone(), &[][..]),
        ("/console/admin/keys/rotate".to_owned(), rotate),
        (format!("/console/admin/clients/{shop}/enable"), &[][..]),
    ];
    for token in [None, Some(""), Some(foreign.as_str())] {
        for (path, fields) in &targets {
            let mut form = fields.to_vec();
            form.extend(token.map(|t| ("csrf", t)));
            let r = op.post(path, &form).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with {token:?}");
        }
    }
    assert!(app.app.accounts.account_get(&seller).await.unwrap().enabled);
    assert!(!app.app.admin.client_get(&shop).await.unwrap().enabled);
    assert_eq!(app.app.admin.keys_list().len(), keys);
    assert_eq!(
        app.app
            .admin
            .audit_list(None, None, 1_000)
            .await
            .unwrap()
            .len(),
        audit
    );
});
