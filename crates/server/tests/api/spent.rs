//! Single-use ids across the cluster (`spent_ids`, the ground client assertions' `jti` checks will stand on): an id
//! is spent once, a replay is told apart until the id's time has passed, concurrent spends from two nodes' pools
//! give exactly one success, and the purge removes only what has expired.

use keyward::store::Expiring;

use crate::both_engines;

both_engines!(an_id_is_spent_once_across_the_cluster, |app| {
    let store = &app.app.store;
    let now = 1_800_000_000;
    assert!(store.spend_once("k1", now + 60, now).await.unwrap());
    assert!(
        !store.spend_once("k1", now + 60, now).await.unwrap(),
        "a replay"
    );
    assert!(
        !store.spend_once("k1", now + 120, now + 59).await.unwrap(),
        "still within its time"
    );
    // Its time has passed (the purge has not run): spent afresh, and then a replay again.
    assert!(store.spend_once("k1", now + 200, now + 60).await.unwrap());
    assert!(!store.spend_once("k1", now + 200, now + 61).await.unwrap());

    // Two nodes (two pools on one database), twenty spends of one id at once: exactly one succeeds.
    let other = app.node().await;
    let spends: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 {
                app.app.store.clone()
            } else {
                other.app.store.clone()
            };
            tokio::spawn(async move { store.spend_once("race", now + 60, now).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for s in spends {
        won += usize::from(s.await.unwrap());
    }
    assert_eq!(won, 1);

    // The purge removes what has expired and keeps what has not.
    assert!(store.spend_once("old", now + 10, now).await.unwrap());
    let purged = store
        .purge_expired(Expiring::SpentIds, now + 100, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        purged, 2,
        "race and old have expired; k1 lives until now + 200"
    );
    assert!(
        !store.spend_once("k1", now + 200, now + 100).await.unwrap(),
        "kept by the purge"
    );
});
