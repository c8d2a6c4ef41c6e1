use serde_json::json;

use crate::{signin, TestServer};

fn methods(list: &str) -> String {
    format!(r#","authenticationRequirement":"multiFactorAuthentication","authenticationDetails":{list}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_add_up() {
    let server = TestServer::start().await;
    let password_and_sms = methods(
        r#"[{"authenticationMethod":"Password","succeeded":true},{"authenticationMethod":"Text message","succeeded":true}]"#,
    );
    let fido = methods(r#"[{"authenticationMethod":"FIDO2 security key","succeeded":true}]"#);
    let claim = methods(
        r#"[{"authenticationMethod":"Previously satisfied","succeeded":true,"authenticationStepResultDetail":"MFA requirement satisfied by claim in the token"}]"#,
    );
    let mut records = Vec::new();
    for i in 0..10 {
        records.push(signin(&format!("t{i}"), 24 * i + 1, "alice@x.com", "Teams", 0, &password_and_sms));
    }
    for i in 0..5 {
        records.push(signin(&format!("o{i}"), 24 * i + 2, "bob@x.com", "Outlook", 50126, ""));
    }
    records.push(signin("f1", 3, "carol@x.com", "Outlook", 0, &fido));
    records.push(signin("c1", 4, "carol@x.com", "Workday", 50140, &claim));
    server.load(&records).await;

    let (status, summary) = server.get("/api/v1/reports/summary?days=30").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (
            summary["total"].as_i64(),
            summary["success"].as_i64(),
            summary["failure"].as_i64(),
            summary["interrupted"].as_i64()
        ),
        (Some(17), Some(11), Some(5), Some(1))
    );
    assert_eq!(summary["users"], 3);
    let (_, week) = server.get("/api/v1/reports/summary?days=7").await;
    assert!(week["total"].as_i64().unwrap() < 17);

    let (_, timeline) = server.get("/api/v1/reports/signins/timeline?bucket=day&days=30").await;
    let points = timeline["points"].as_array().unwrap();
    assert!(points.len() >= 30 && points.len() <= 32, "{} daily points", points.len());
    assert_eq!(
        points.iter().map(|p| p["total"].as_i64().unwrap()).sum::<i64>(),
        17,
        "empty days are zero, nothing is lost"
    );
    let (_, weekly) = server.get("/api/v1/reports/signins/timeline?bucket=week&days=30&app=Teams").await;
    assert_eq!(
        weekly["points"].as_array().unwrap().iter().map(|p| p["total"].as_i64().unwrap()).sum::<i64>(),
        10,
        "reports take the list filters"
    );

    let (_, top) = server.get("/api/v1/reports/apps/top?n=2&days=30").await;
    let apps = top["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!((apps[0]["app"].as_str(), apps[0]["total"].as_i64()), (Some("Teams"), Some(10)));
    assert_eq!((apps[1]["app"].as_str(), apps[1]["total"].as_i64()), (Some("Outlook"), Some(6)));
    let outlook = (&apps[1]["success"], &apps[1]["failure"], &apps[1]["interrupted"], &apps[1]["users"]);
    assert_eq!(outlook, (&json!(1), &json!(5), &json!(0), &json!(2)), "bob and carol");
    assert_eq!(apps[0]["users"], 1);
    // More places than applications: all of them, most sign-ins first.
    let (_, three) = server.get("/api/v1/reports/apps/top?n=5&days=30").await;
    let names: Vec<&str> = three["apps"].as_array().unwrap().iter().map(|a| a["app"].as_str().unwrap()).collect();
    assert_eq!(names, ["Teams", "Outlook", "Workday"]);
    assert_eq!((&three["apps"][2]["interrupted"], &three["apps"][2]["users"]), (&json!(1), &json!(1)));
    assert_eq!(apps[0]["weekly"].as_array().unwrap().iter().map(|w| w["count"].as_i64().unwrap()).sum::<i64>(), 10);

    let (_, pattern) = server.get("/api/v1/reports/users/bob@x.com/pattern?days=90").await;
    assert_eq!(pattern["total"], 5);
    assert_eq!(pattern["failure"], 5);
    assert_eq!(pattern["failures"][0]["errorCode"], 50126);
    assert_eq!(pattern["countries"][0]["country"], "FR");
    let matrix_total: i64 = pattern["hourByWeekday"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d.as_array().unwrap())
        .map(|c| c.as_i64().unwrap())
        .sum();
    assert_eq!(matrix_total, 5);
    // The user as the list matches one: by display name too, in any case.
    for user in ["User%20bob@x.com", "BOB@X.COM"] {
        let (_, by_name) = server.get(&format!("/api/v1/reports/users/{user}/pattern?days=90")).await;
        assert_eq!((&by_name["total"], &by_name["failure"]), (&json!(5), &json!(5)), "{user}");
    }

    let (_, auth) = server.get("/api/v1/reports/auth-methods?days=30").await;
    assert_eq!(auth["signIns"], 17);
    assert_eq!(auth["mfaRequired"], 12);
    assert_eq!(auth["passwordless"], 1);
    assert_eq!(auth["mfaSatisfiedByClaim"], 1);
    let methods = auth["methods"].as_array().unwrap();
    let password = methods.iter().find(|m| m["method"] == "Password").unwrap();
    assert_eq!((password["signIns"].as_i64(), password["successRate"].as_f64()), (Some(10), Some(1.0)));

    let (status, _) = server.get("/api/v1/reports/signins/timeline?bucket=month").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_follow_a_time_zone_across_a_daylight_saving_change() {
    let server = TestServer::start().await;
    let at = |id: &str, time: &str| {
        let record = signin(id, 0, "ann@x.com", "Teams", 0, "");
        let now = record.split("\"createdDateTime\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        record.replace(&now, time)
    };
    // Paris: 00:30 Sunday 31 March (CET), 03:30 the same day (CEST from 01:00Z), 00:30 Monday.
    server
        .load(&[at("a", "2024-03-30T23:30:00Z"), at("b", "2024-03-31T01:30:00Z"), at("c", "2024-03-31T22:30:00Z")])
        .await;
    let range = "from=2024-03-30T00:00:00Z&to=2024-04-02T00:00:00Z";
    let days = |tz: &str| {
        let server = &server;
        let path = format!("/api/v1/reports/signins/timeline?bucket=day&{range}{tz}");
        async move {
            let (status, timeline) = server.get(&path).await;
            assert_eq!(status, 200, "{timeline}");
            timeline["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["total"] != 0)
                .map(|p| (p["start"].as_str().unwrap().to_string(), p["total"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let utc = days("").await;
    assert_eq!(utc, [("2024-03-30T00:00:00Z".to_string(), 1), ("2024-03-31T00:00:00Z".to_string(), 2)]);
    // Paris days start at local midnight: 23:00Z in winter, 22:00Z in summer.
    let paris = days("&tz=Europe/Paris").await;
    assert_eq!(paris, [("2024-03-30T23:00:00Z".to_string(), 2), ("2024-03-31T22:00:00Z".to_string(), 1)]);

    let (_, hours) = server.get(&format!("/api/v1/reports/signins/timeline?bucket=hour&{range}&tz=Europe/Paris")).await;
    let starts: Vec<&str> = hours["points"].as_array().unwrap().iter().map(|p| p["start"].as_str().unwrap()).collect();
    let unique: std::collections::BTreeSet<&str> = starts.iter().copied().collect();
    assert_eq!(unique.len(), starts.len(), "the hour the clock skips is not a point of its own");

    let (_, pattern) = server.get(&format!("/api/v1/reports/users/ann@x.com/pattern?{range}&tz=Europe/Paris")).await;
    assert_eq!(pattern["tz"], "Europe/Paris");
    let counts = &pattern["hourByWeekday"]["counts"];
    assert_eq!(
        (&counts[6][0], &counts[6][3], &counts[0][0]),
        (&json!(1), &json!(1), &json!(1)),
        "Sun 00, Sun 03, Mon 00"
    );
    let (_, top) = server.get(&format!("/api/v1/reports/apps/top?{range}&tz=Europe/Paris")).await;
    let weeks: Vec<(&str, i64)> = top["apps"][0]["weekly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["week"].as_str().unwrap(), w["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(weeks, [("2024-03-24T23:00:00Z", 2), ("2024-03-31T22:00:00Z", 1)], "Paris weeks start Monday 00:00");

    let (status, error) = server.get("/api/v1/reports/summary?tz=Mars/Olympus").await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("Mars/Olympus"), "{error}");
}
