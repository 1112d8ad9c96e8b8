//! JSON Schemas of the configuration files, generated from the model's types, so editors with
//! yaml-language-server complete and check configurations.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::model::{
    AuthenticationPolicy, Campaign, Certification, ConfigFile, DataClassification, EncryptionPolicy, Kind, Role,
    ServiceAccount, SodRule, User,
};

/// Any resource document.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Resource {
    User(User),
    Role(Role),
    ServiceAccount(ServiceAccount),
    DataClassification(DataClassification),
    AuthenticationPolicy(AuthenticationPolicy),
    EncryptionPolicy(EncryptionPolicy),
    SodRule(SodRule),
    Campaign(Campaign),
    Certification(Certification),
}

fn schema_of<T: JsonSchema>(title: &str, description: &str) -> Value {
    let schema = SchemaSettings::draft07().into_generator().into_root_schema_for::<T>();
    let mut v = serde_json::to_value(schema).expect("schemas serialize");
    if let Some(obj) = v.as_object_mut() {
        obj.insert("title".into(), Value::String(title.into()));
        obj.insert("description".into(), Value::String(description.into()));
    }
    v
}

/// Every schema, as (file name, pretty JSON with a trailing newline), in a stable order.
pub fn all() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, Value)> = vec![
        (
            "keyward.json",
            schema_of::<ConfigFile>(
                "keyward.yaml",
                "keyward settings: targets, ownership, lifecycle, guards, audit, notify, state, policy, governance",
            ),
        ),
        ("resource.json", schema_of::<Resource>("keyward resource", "Any keyward resource document")),
    ];
    for kind in Kind::ALL {
        let v = match kind {
            Kind::User => schema_of::<User>("User", "A person and the roles they hold"),
            Kind::Role => schema_of::<Role>("Role", "A business role and what it is on each target"),
            Kind::ServiceAccount => {
                schema_of::<ServiceAccount>("ServiceAccount", "A non-human identity and its credentials")
            }
            Kind::DataClassification => {
                schema_of::<DataClassification>("DataClassification", "A class of data and who may read it")
            }
            Kind::AuthenticationPolicy => {
                schema_of::<AuthenticationPolicy>("AuthenticationPolicy", "How people must sign in")
            }
            Kind::EncryptionPolicy => {
                schema_of::<EncryptionPolicy>("EncryptionPolicy", "Requirements on TLS, keys, certificates and secrets")
            }
            Kind::SodRule => schema_of::<SodRule>("SodRule", "A segregation-of-duties rule"),
            Kind::Campaign => {
                schema_of::<Campaign>("Campaign", "A certification campaign (written by keyward certify open)")
            }
            Kind::Certification => schema_of::<Certification>(
                "Certification",
                "One reviewer's part of a certification campaign: mark each line keep or revoke",
            ),
        };
        out.push((kind.schema_file(), v));
    }
    out.into_iter()
        .map(|(name, v)| {
            let mut s = serde_json::to_string_pretty(&v).expect("schemas serialize");
            s.push('\n');
            (name, s)
        })
        .collect()
}
