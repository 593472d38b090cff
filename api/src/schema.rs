// @generated-style diesel schema, kept by hand in step with migrations/.

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::TextList;

    requests (id) {
        id -> Int8,
        repo -> Text,
        #[sql_name = "ref"]
        git_ref -> Text,
        pkg_managers -> TextList,
        packages -> Jsonb,
        flags -> TextList,
        dependency_replacements -> Jsonb,
        user_name -> Nullable<Text>,
        submitted_by -> Nullable<Text>,
        created -> Timestamp,
        state -> Text,
        state_reason -> Text,
        updated -> Timestamp,
        error_origin -> Nullable<Text>,
        error_type -> Nullable<Text>,
        packages_count -> Nullable<Int4>,
        dependencies_count -> Nullable<Int4>,
        packages_data -> Nullable<Jsonb>,
        environment_variables -> Jsonb,
        token_salt -> Text,
        dispatched_at -> Nullable<Timestamp>,
        attempts -> Int4,
        started_at -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
        worker -> Nullable<Text>,
        dispatch_lease_until -> Nullable<Timestamp>,
        bundle_sha256 -> Nullable<Text>,
        imported_instance -> Nullable<Text>,
        imported_id -> Nullable<Int8>,
        queued_in_process -> Bool,
    }
}

diesel::table! {
    request_states (id) {
        id -> Int8,
        request_id -> Int8,
        state -> Text,
        state_reason -> Text,
        updated -> Timestamp,
    }
}

diesel::table! {
    configuration_files (request_id, path) {
        request_id -> Int8,
        path -> Text,
        content -> Nullable<Bytea>,
        sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    artifacts (request_id, pm, name, filename) {
        request_id -> Int8,
        pm -> Text,
        name -> Text,
        version -> Text,
        filename -> Text,
        store_key -> Text,
        meta -> Jsonb,
        source_url -> Nullable<Text>,
    }
}

diesel::table! {
    request_dependencies (request_id, purl) {
        request_id -> Int8,
        purl -> Text,
        #[sql_name = "type"]
        kind -> Text,
        name -> Text,
        version -> Nullable<Text>,
        dev -> Bool,
    }
}

diesel::table! {
    request_pkg_managers (pkg_manager, request_id) {
        pkg_manager -> Text,
        request_id -> Int8,
    }
}

diesel::joinable!(request_states -> requests (request_id));
diesel::joinable!(configuration_files -> requests (request_id));
diesel::joinable!(artifacts -> requests (request_id));
diesel::joinable!(request_dependencies -> requests (request_id));
diesel::joinable!(request_pkg_managers -> requests (request_id));
diesel::allow_tables_to_appear_in_same_query!(
    requests,
    request_states,
    configuration_files,
    artifacts,
    request_dependencies,
    request_pkg_managers
);

diesel::table! {
    transfers (id) {
        id -> Int8,
        kind -> Text,
        instance -> Text,
        since -> Nullable<Timestamp>,
        until -> Timestamp,
        directory -> Text,
        state -> Text,
        state_reason -> Text,
        started -> Timestamp,
        finished -> Nullable<Timestamp>,
        objects -> Int8,
        bytes -> Int8,
        present -> Int8,
        refused -> Int8,
        requests -> Int8,
    }
}

diesel::table! {
    exported_objects (transfer_id, key) {
        transfer_id -> Int8,
        key -> Text,
    }
}

diesel::joinable!(exported_objects -> transfers (transfer_id));
diesel::allow_tables_to_appear_in_same_query!(exported_objects, transfers);
