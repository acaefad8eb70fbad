//! The SCIM schemas rolecall serves (RFC 7643 §4 and §8.7): core User, the enterprise
//! User extension and core Group. One table drives validation of writes, attribute
//! name canonicalisation, filter case rules and the `/Schemas` discovery documents.

use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
}

/// One attribute of a schema, as RFC 7643 §7 describes it.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub sub: &'static [AttrDef],
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        sub: &[],
        canonical: &[],
        reference_types: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    attr(name, AttrType::String, description)
}

const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    attr(name, AttrType::Boolean, description)
}

const fn complex(
    name: &'static str,
    sub: &'static [AttrDef],
    description: &'static str,
) -> AttrDef {
    let mut a = attr(name, AttrType::Complex, description);
    a.sub = sub;
    a
}

const fn multi(mut a: AttrDef) -> AttrDef {
    a.multi = true;
    a
}

const fn required(mut a: AttrDef) -> AttrDef {
    a.required = true;
    a
}

const fn exact(mut a: AttrDef) -> AttrDef {
    a.case_exact = true;
    a
}

const fn read_only(mut a: AttrDef) -> AttrDef {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn canonical(mut a: AttrDef, values: &'static [&'static str]) -> AttrDef {
    a.canonical = values;
    a
}

const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> AttrDef {
    let mut a = attr(name, AttrType::Reference, description);
    a.reference_types = types;
    a
}

const TYPED_SUB: [AttrDef; 4] = [
    string("value", "The attribute's value."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string(
        "type",
        "A label indicating the attribute's function, e.g. 'work' or 'home'.",
    ),
    boolean(
        "primary",
        "Indicates the 'primary' or preferred attribute value for this attribute.",
    ),
];

const EMAIL_SUB: [AttrDef; 4] = [
    string("value", "Email address for the User."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    canonical(
        string("type", "A label indicating the attribute's function."),
        &["work", "home", "other"],
    ),
    boolean("primary", "Indicates the primary email address."),
];

const PHONE_SUB: [AttrDef; 4] = [
    string("value", "Phone number of the User."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    canonical(
        string("type", "A label indicating the attribute's function."),
        &["work", "home", "mobile", "fax", "pager", "other"],
    ),
    boolean("primary", "Indicates the primary phone number."),
];

const NAME_SUB: [AttrDef; 6] = [
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name of the User."),
    string("givenName", "The given name of the User."),
    string("middleName", "The middle name(s) of the User."),
    string("honorificPrefix", "The honorific prefix(es) of the User."),
    string("honorificSuffix", "The honorific suffix(es) of the User."),
];

const ADDRESS_SUB: [AttrDef; 8] = [
    string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    string("streetAddress", "The full street address component."),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    canonical(
        string("type", "A label indicating the attribute's function."),
        &["work", "home", "other"],
    ),
    boolean("primary", "Indicates the primary mailing address."),
];

const USER_GROUPS_SUB: [AttrDef; 4] = [
    read_only(string("value", "The identifier of the User's group.")),
    read_only(reference(
        "$ref",
        &["User", "Group"],
        "The URI of the corresponding 'Group' resource.",
    )),
    read_only(string("display", "A human-readable name of the group.")),
    read_only(canonical(
        string("type", "How the membership is derived."),
        &["direct", "indirect"],
    )),
];

pub const USER_ATTRS: &[AttrDef] = &[
    {
        let mut a = required(string("userName", "Unique identifier for the User, typically the sign-in name. Unique case-insensitively."));
        a.uniqueness = Uniqueness::Server;
        a
    },
    complex("name", &NAME_SUB, "The components of the user's real name."),
    string("displayName", "The name of the User, suitable for display to end-users."),
    string("nickName", "The casual way to address the user."),
    reference("profileUrl", &["external"], "A fully qualified URL pointing to a page representing the User's online profile."),
    string("title", "The user's title, such as 'Vice President'."),
    string("userType", "Used to identify the relationship between the organization and the user."),
    string("preferredLanguage", "Indicates the User's preferred written or spoken language."),
    string("locale", "Used to indicate the User's default location for localization."),
    string("timezone", "The User's time zone in the 'Olson' time zone database format."),
    boolean("active", "A Boolean value indicating the User's administrative status. A user who is not active has no roles."),
    {
        let mut a = string("password", "Write-only. rolecall does not authenticate users and discards any password sent to it.");
        a.mutability = Mutability::WriteOnly;
        a.returned = Returned::Never;
        a
    },
    multi(complex("emails", &EMAIL_SUB, "Email addresses for the user.")),
    multi(complex("phoneNumbers", &PHONE_SUB, "Phone numbers for the User.")),
    multi(complex("ims", &TYPED_SUB, "Instant messaging addresses for the User.")),
    multi(complex("photos", &TYPED_SUB, "URLs of photos of the User.")),
    multi(complex("addresses", &ADDRESS_SUB, "A physical mailing address for this User.")),
    read_only(multi(complex("groups", &USER_GROUPS_SUB, "A list of groups to which the user belongs, maintained through Group membership."))),
    multi(complex("entitlements", &TYPED_SUB, "A list of entitlements for the User.")),
    multi(complex("roles", &TYPED_SUB, "A list of roles for the User (as sent by the IdP; effective roles come from the mapping table).")),
    multi(complex("x509Certificates", &TYPED_SUB, "A list of certificates issued to the User.")),
];

const MANAGER_SUB: [AttrDef; 3] = [
    string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    reference(
        "$ref",
        &["User"],
        "The URI of the SCIM resource representing the User's manager.",
    ),
    read_only(string(
        "displayName",
        "The displayName of the User's manager.",
    )),
];

pub const ENTERPRISE_ATTRS: &[AttrDef] = &[
    string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex("manager", &MANAGER_SUB, "The User's manager."),
];

const MEMBER_SUB: [AttrDef; 4] = [
    {
        let mut a = exact(string("value", "Identifier of the member of this Group."));
        a.mutability = Mutability::Immutable;
        a
    },
    {
        let mut a = reference(
            "$ref",
            &["User", "Group"],
            "The URI of the member resource.",
        );
        a.mutability = Mutability::Immutable;
        a
    },
    read_only(string("display", "A human-readable name of the member.")),
    {
        let mut a = canonical(
            string("type", "The type of the member."),
            &["User", "Group"],
        );
        a.mutability = Mutability::Immutable;
        a
    },
];

pub const GROUP_ATTRS: &[AttrDef] = &[
    required(string(
        "displayName",
        "A human-readable name for the Group. Not unique.",
    )),
    multi(complex(
        "members",
        &MEMBER_SUB,
        "A list of members of the Group (Users or Groups).",
    )),
];

/// Attributes every resource has (RFC 7643 §3.1), outside any schema's attribute list.
pub const COMMON_ATTRS: &[AttrDef] = &[
    {
        let mut a = exact(read_only(string(
            "id",
            "Unique identifier assigned by the service provider.",
        )));
        a.returned = Returned::Always;
        a.uniqueness = Uniqueness::Server;
        a
    },
    exact(string(
        "externalId",
        "Identifier assigned by the provisioning client. Unique per resource type.",
    )),
];

pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

pub const SCHEMAS: &[SchemaDef] = &[
    SchemaDef {
        id: USER_SCHEMA,
        name: "User",
        description: "User Account",
        attributes: USER_ATTRS,
    },
    SchemaDef {
        id: ENTERPRISE_USER_SCHEMA,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: ENTERPRISE_ATTRS,
    },
    SchemaDef {
        id: GROUP_SCHEMA,
        name: "Group",
        description: "Group",
        attributes: GROUP_ATTRS,
    },
];

/// Find an attribute by name, case-insensitively.
pub fn find_attr<'a>(attrs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

pub fn schema_by_id(id: &str) -> Option<&'static SchemaDef> {
    SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

fn attr_json(a: &AttrDef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    m.insert("type".into(), json!(a.ty.as_str()));
    m.insert("multiValued".into(), json!(a.multi));
    m.insert("description".into(), json!(a.description));
    m.insert("required".into(), json!(a.required));
    if matches!(a.ty, AttrType::String | AttrType::Reference) {
        m.insert("caseExact".into(), json!(a.case_exact));
    }
    if !a.canonical.is_empty() {
        m.insert("canonicalValues".into(), json!(a.canonical));
    }
    if !a.reference_types.is_empty() {
        m.insert("referenceTypes".into(), json!(a.reference_types));
    }
    m.insert(
        "mutability".into(),
        json!(match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }),
    );
    m.insert(
        "returned".into(),
        json!(match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }),
    );
    m.insert(
        "uniqueness".into(),
        json!(match a.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
        }),
    );
    if !a.sub.is_empty() {
        m.insert(
            "subAttributes".into(),
            Value::Array(a.sub.iter().map(attr_json).collect()),
        );
    }
    Value::Object(m)
}

/// The `/Schemas/{id}` document for one schema; `base` is the public base URL of `/scim/v2`.
pub fn schema_json(s: &SchemaDef, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", s.id),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(
            find_attr(USER_ATTRS, "USERNAME").map(|a| a.name),
            Some("userName")
        );
        assert!(find_attr(USER_ATTRS, "nope").is_none());
        assert!(schema_by_id(&ENTERPRISE_USER_SCHEMA.to_lowercase()).is_some());
    }

    #[test]
    fn schema_documents_describe_attributes() {
        let doc = schema_json(&SCHEMAS[0], "http://x/scim/v2");
        let attrs = doc["attributes"].as_array().unwrap();
        let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["caseExact"], false);
        let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(password["returned"], "never");
        assert_eq!(
            doc["meta"]["location"],
            format!("http://x/scim/v2/Schemas/{USER_SCHEMA}")
        );
    }
}
