//! Every vector made by running python-passcrow 0.0.7 (../shared/vectors,
//! copied into tests/data so the crate tests stand alone).

use passcrow::pack::{ephemeral, RecoveryPack};
use passcrow::payment;
use passcrow::proto::{self, EscrowData};
use passcrow::testing::{self as crypto, shamir};
use passcrow::Key32;
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("data/python-passcrow-0.0.7.json");
    serde_json::from_str(text).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    crypto::b64decode(v.as_str().unwrap()).unwrap()
}

fn key(v: &Value) -> Key32 {
    Key32::from_bytes(b64(v).try_into().unwrap())
}

#[test]
fn copy_matches_shared_vectors() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/python-passcrow-0.0.7.json"
    );
    if let Ok(t) = std::fs::read_to_string(shared) {
        assert_eq!(
            t,
            include_str!("data/python-passcrow-0.0.7.json"),
            "tests/data is stale"
        );
    }
}

#[test]
fn aead_vectors() {
    let v = vectors();
    for a in v["aead"].as_array().unwrap() {
        assert_eq!(a["aad"], "Passcrow Encrypted Data");
        let k = key(&a["key_b64"]);
        let nonce: [u8; 16] = b64(&a["nonce_b64"]).try_into().unwrap();
        let pt = b64(&a["plaintext_b64"]);
        let blob = crypto::seal_with_nonce(&k, &nonce, &pt).unwrap();
        assert_eq!(blob, a["blob_b64"].as_str().unwrap());
        let opened = crypto::open(&k, &blob, "vector").unwrap();
        assert_eq!(opened.expose_secret(), &pt[..]);
    }
}

#[test]
fn shamir_vectors() {
    let v = vectors();
    for s in v["shamir"].as_array().unwrap() {
        assert_eq!(s["prime"], "2^521-1");
        let t = s["threshold"].as_u64().unwrap() as usize;
        let secret = data_hex(s["secret_hex"].as_str().unwrap());
        let shares: Vec<&str> = s["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        // every window of `t` consecutive shares, and all of them
        for start in 0..=shares.len() - t {
            let k = shamir::combine(&shares[start..start + t]).unwrap();
            assert_eq!(k.expose_secret().to_vec(), secret);
        }
        assert_eq!(
            shamir::combine(&shares).unwrap().expose_secret().to_vec(),
            secret
        );
        // fewer than t shares do not give the secret
        let k = shamir::combine(&shares[..t - 1]);
        assert!(k
            .map(|k| k.expose_secret().to_vec() != secret)
            .unwrap_or(true));
    }
}

fn data_hex(h: &str) -> Vec<u8> {
    let padded = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn key_int_vectors_and_leading_zero() {
    let v = vectors();
    for k in v["key_int"].as_array().unwrap() {
        let raw = b64(&k["key_b64"]);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.trim_start_matches('0'), k["int_hex"].as_str().unwrap());
        // Our split/combine keeps all 32 bytes, even a leading zero byte
        // (the reference's aesgcm_key_from_int drops it).
        let arr: [u8; 32] = raw.clone().try_into().unwrap();
        let shares = shamir::split(&arr, 3, 3).unwrap();
        let s: Vec<&str> = shares.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(shamir::combine(&s).unwrap().expose_secret(), &arr);
    }
    for _ in 0..200 {
        assert_ne!(crypto::random_pack_key().expose_secret()[0], 0);
    }
}

#[test]
fn hashcash_vectors() {
    let v = vectors();
    for h in v["hashcash"].as_array().unwrap() {
        let bits = h["bits"].as_u64().unwrap() as u32;
        let data = h["data"].as_str().unwrap().as_bytes();
        let token = h["token"].as_str().unwrap();
        let (scheme, cash) = token.split_once(':').unwrap();
        assert_eq!(scheme, format!("hashcash-{bits}"));
        let (c, ts) = payment::parse_hashcash_cash(cash).unwrap();
        let d = payment::hashcash_digest(data, c, ts);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, h["scrypt_hex"].as_str().unwrap());
        assert!(payment::hashcash_valid(bits, data, c, ts));
        assert!(payment::check_hashcash(bits, cash, data, ts as i64));
        assert!(!payment::hashcash_valid(bits, data, c + 1, ts) || bits < 4);
    }
}

#[test]
fn ephemeral_vectors() {
    let v = vectors();
    for e in v["ephemeral"].as_array().unwrap() {
        let uk = e["user_key"].as_str().unwrap();
        assert_eq!(
            ephemeral::escrow_id(uk).unwrap(),
            e["escrow_id"].as_str().unwrap()
        );
        assert_eq!(
            ephemeral::escrow_key(uk).unwrap().to_b64(),
            e["escrow_key_b64"].as_str().unwrap()
        );
        assert_eq!(
            ephemeral::pack_key(uk).unwrap().to_b64(),
            e["pack_key_b64"].as_str().unwrap()
        );
    }
}

/// Two derivations at a time or one at a time, the keys are the vectors'.
#[test]
fn ephemeral_vectors_whatever_the_concurrency() {
    use passcrow::client::KdfConcurrency;
    let v = vectors();
    let e = &v["ephemeral"][0];
    let uk = e["user_key"].as_str().unwrap();
    for conc in [KdfConcurrency::TwoAtATime, KdfConcurrency::OneAtATime] {
        let (id, ekey, pkey) = ephemeral::all_keys(uk, conc).unwrap();
        assert_eq!(id, e["escrow_id"].as_str().unwrap(), "{conc:?}");
        assert_eq!(
            ekey.to_b64(),
            e["escrow_key_b64"].as_str().unwrap(),
            "{conc:?}"
        );
        assert_eq!(
            pkey.to_b64(),
            e["pack_key_b64"].as_str().unwrap(),
            "{conc:?}"
        );
    }
}

#[test]
fn escrow_request_vectors() {
    let v = vectors();
    for r in v["escrow_request"].as_array().unwrap() {
        let k = key(&r["recovery_key_b64"]);
        let pt = crypto::open(&k, r["escrow_data"].as_str().unwrap(), "escrow data").unwrap();
        let d: EscrowData = proto::parse(pt.expose_secret(), "escrow data").unwrap();
        let want = &r["decrypted"];
        assert_eq!(d.description, want["description"].as_str().unwrap());
        assert_eq!(d.secret.expose_secret(), want["secret"].as_str().unwrap());
        assert_eq!(d.verify.as_str(), want["verify"].as_str().unwrap());
        assert_eq!(d.timeout, want["timeout"].as_i64());
        assert!(d.notify.is_none());
        // and our serialisation of it is the reference's, byte for byte
        let ours = proto::to_reference_json(&d);
        assert_eq!(ours.as_bytes(), pt.expose_secret());
    }
}

#[test]
fn pack_recovery_vectors() {
    let v = vectors();
    for p in v["pack_recovery"].as_array().unwrap() {
        let text = p["pack_file_text"].as_str().unwrap();
        let pack = RecoveryPack::from_json(text.as_bytes(), "vector pack").unwrap();
        // We write packs exactly as the reference does.
        assert_eq!(pack.to_json(), text);
        assert_eq!(pack.min_shares, 2);
        let rows = p["server_rows"].as_array().unwrap();
        let mut remote = vec![];
        for (rec, row) in pack.escrow.iter().zip(rows) {
            assert_eq!(
                rec.response.escrow_data_id,
                row["escrow-data-id"].as_str().unwrap()
            );
            let k = crypto::key_from_b64(rec.recovery_key.expose_secret(), "recovery key").unwrap();
            let pt = crypto::open(&k, row["escrow_data"].as_str().unwrap(), "row").unwrap();
            let d: EscrowData = proto::parse(pt.expose_secret(), "row").unwrap();
            remote.push(d.secret.expose_secret().to_string());
        }
        let want = b64(&p["secret_b64"]);
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let mut shares: Vec<&str> = pair.iter().map(|i| remote[*i].as_str()).collect();
            shares.extend(pack.shares.iter().map(|s| s.expose_secret()));
            let k = shamir::combine(&shares).unwrap();
            assert_eq!(pack.open_secret(&k).unwrap().expose_secret(), &want[..]);
        }
        // one escrowed share plus the local one is not enough
        let shares = [remote[0].as_str(), pack.shares[0].expose_secret()];
        let k = shamir::combine(&shares);
        assert!(k.map(|k| pack.open_secret(&k).is_err()).unwrap_or(true));
    }
}
