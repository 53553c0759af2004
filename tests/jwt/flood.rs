//! Refusals are counted rather than logged one by one so that anyone who
//! can reach the CA cannot grow its audit log at will. The attestor name
//! is the caller's to choose: made-up names must not each become a record,
//! nor carry the caller's text into the log.

use serde_json::Value;

use crate::fixture::*;

#[test]
fn made_up_attestor_names_do_not_grow_the_audit_log() {
    let ca = Ca::start();
    let token = ca.idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    // 20 names of 8 KiB each: a body well under the 64 KiB limit.
    let names: Vec<String> = (0..20)
        .map(|i| format!("{i:02}-{}", "made-up-attestor-".repeat(480)))
        .collect();
    for name in &names {
        assert_refused(&ca.attest(name, &token), "no attestor of that name");
    }
    let (dir, _) = ca.stop();
    let records = audit_records(&dir);
    let refusals: Vec<&Value> = records
        .iter()
        .filter(|record| record["action"] == "attestation.refuse")
        .collect();
    let counted: u64 = refusals
        .iter()
        .map(|record| record["details"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 20, "every refusal is counted");
    let written = serde_json::to_string(&refusals).unwrap().len();
    assert!(
        written < 16 * 1024,
        "20 refusals with made-up attestor names wrote {} records, {written} bytes of audit log",
        refusals.len()
    );
    let audit_text = serde_json::to_string(&records).unwrap();
    for name in &names {
        assert!(
            !audit_text.contains(name.as_str()),
            "a caller's made-up attestor name ({} bytes) is in the audit log",
            name.len()
        );
    }
}
