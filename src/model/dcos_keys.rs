//! The names the DC/OS installer knows in `genconf/config.yaml` [pure data].
//!
//! Collected from dcos/dcos (the open-source DC/OS 2.x tree): every argument that `gen/calc.py`'s
//! `entry` and `gen/build_deploy/bash.py`'s `onprem_source` define, validate or take as a
//! parameter, every variable the templates `gen/dcos-config.yaml`, `gen/dcos-services.yaml`,
//! `gen/cloud-config.yaml` and `gen/dcos-metadata.yaml` read, and the keys the SSH installer
//! (`dcos_installer`) reads from the same file. A `dcos.config` key outside this list is a typo
//! or a key of another product; the lab file is refused with the closest real name.

/// Sorted, so lookups are a binary search.
pub const GENCONF_KEYS: &[&str] = &[
    "adminrouter_auth_enabled",
    "adminrouter_grpc_proxy_port",
    "adminrouter_tls_1_0_enabled",
    "adminrouter_tls_1_1_enabled",
    "adminrouter_tls_1_2_enabled",
    "adminrouter_tls_cipher_override",
    "adminrouter_tls_cipher_suite",
    "adminrouter_tls_version_override",
    "adminrouter_x_frame_options",
    "agent_list",
    "auth_cookie_secure_flag",
    "aws_access_key_id",
    "aws_masters_have_public_ip",
    "aws_region",
    "aws_secret_access_key",
    "bootstrap_id",
    "bootstrap_tmp_dir",
    "bootstrap_url",
    "bootstrap_variant",
    "calico_enabled",
    "calico_ipinip_mtu",
    "calico_network_cidr",
    "calico_veth_mtu",
    "calico_vxlan_enabled",
    "calico_vxlan_mtu",
    "calico_vxlan_port",
    "calico_vxlan_vni",
    "channel_name",
    "check_config",
    "check_config_contents",
    "check_ld_library_path",
    "check_search_path",
    "check_time",
    "cluster_docker_credentials",
    "cluster_docker_credentials_dcos_owned",
    "cluster_docker_credentials_enabled",
    "cluster_docker_credentials_path",
    "cluster_docker_credentials_write_to_etc",
    "cluster_docker_registry_enabled",
    "cluster_docker_registry_url",
    "cluster_name",
    "cluster_package_list_id",
    "config_name",
    "custom_auth",
    "custom_auth_json",
    "custom_check_bins_dir",
    "custom_check_bins_hash",
    "custom_check_bins_package_id",
    "custom_check_bins_package_name",
    "custom_check_bins_provided",
    "custom_checks",
    "dcos_cni_data_dir",
    "dcos_gen_resolvconf_search_str",
    "dcos_image_commit",
    "dcos_l4lb_enable_ipset",
    "dcos_l4lb_enable_ipv6",
    "dcos_l4lb_forward_metrics",
    "dcos_l4lb_max_named_ip",
    "dcos_l4lb_max_named_ip6",
    "dcos_l4lb_max_named_ip6_erltuple",
    "dcos_l4lb_max_named_ip_erltuple",
    "dcos_l4lb_min_named_ip",
    "dcos_l4lb_min_named_ip6",
    "dcos_l4lb_min_named_ip6_erltuple",
    "dcos_l4lb_min_named_ip_erltuple",
    "dcos_net_cluster_identity",
    "dcos_net_push_ops_timeout",
    "dcos_net_rest_enable",
    "dcos_net_watchdog",
    "dcos_overlay_config_attempts",
    "dcos_overlay_enable",
    "dcos_overlay_mtu",
    "dcos_overlay_network",
    "dcos_overlay_network6_default_name",
    "dcos_overlay_network_default_name",
    "dcos_overlay_network_json",
    "dcos_remove_dockercfg_enable",
    "dcos_ucr_default_bridge_network_name",
    "dcos_ucr_default_bridge_subnet",
    "dcos_variant",
    "dcos_version",
    "diagnostics_bundles_dir",
    "dns_bind_ip_blacklist",
    "dns_bind_ip_blacklist_json",
    "dns_bind_ip_reserved",
    "dns_forward_zones",
    "dns_search",
    "docker_remove_delay",
    "docker_stop_timeout",
    "enable_docker_gc",
    "enable_gpu_isolation",
    "enable_ipv6",
    "enable_lb",
    "enable_mesos_input_plugin",
    "enable_mesos_ipv6_discovery",
    "exhibitor_address",
    "exhibitor_admin_password",
    "exhibitor_admin_password_enabled",
    "exhibitor_azure_account_key",
    "exhibitor_azure_account_name",
    "exhibitor_azure_prefix",
    "exhibitor_bootstrap_ca_url",
    "exhibitor_explicit_keys",
    "exhibitor_fs_config_dir",
    "exhibitor_port",
    "exhibitor_static_ensemble",
    "exhibitor_storage_backend",
    "exhibitor_tls_enabled",
    "exhibitor_tls_required",
    "exhibitor_zk_hosts",
    "exhibitor_zk_path",
    "fair_sharing_excluded_resource_names",
    "fault_domain_detect_contents",
    "fault_domain_detect_filename",
    "fault_domain_enabled",
    "gc_delay",
    "gpus_are_scarce",
    "has_marathon_gpu_scheduling_behavior",
    "has_marathon_new_group_enforce_role",
    "has_master_external_loadbalancer",
    "has_mesos_default_container_shm_size",
    "has_mesos_seccomp_profile_name",
    "has_metronome_gpu_scheduling_behavior",
    "http_proxy",
    "https_proxy",
    "intercom_enabled",
    "ip6_detect_contents",
    "ip6_detect_filename",
    "ip_detect_contents",
    "ip_detect_filename",
    "ip_detect_public_contents",
    "ip_detect_public_filename",
    "license_key_contents",
    "licensing_enabled",
    "log_offers",
    "loglevel",
    "marathon_gpu_scheduling_behavior",
    "marathon_java_args",
    "marathon_new_group_enforce_role",
    "marathon_port",
    "master_discovery",
    "master_dns_bindall",
    "master_external_loadbalancer",
    "master_http_loadbalancer",
    "master_list",
    "master_quorum",
    "mesos_agent_log_file",
    "mesos_agent_port",
    "mesos_agent_work_dir",
    "mesos_cgroups_enable_cfs",
    "mesos_cni_root_dir_persist",
    "mesos_container_log_sink",
    "mesos_default_container_shm_size",
    "mesos_disallow_sharing_agent_ipc_namespace",
    "mesos_dns_ip_sources",
    "mesos_dns_port",
    "mesos_dns_resolvers_str",
    "mesos_dns_set_truncate_bit",
    "mesos_docker_volume_chown",
    "mesos_hooks",
    "mesos_http_executor_domain_sockets",
    "mesos_isolation",
    "mesos_log_directory_max_files",
    "mesos_log_retention_count",
    "mesos_log_retention_mb",
    "mesos_logrotate_file_size_mb",
    "mesos_master_log_file",
    "mesos_master_port",
    "mesos_master_work_dir",
    "mesos_max_completed_frameworks",
    "mesos_max_completed_tasks_per_framework",
    "mesos_recovery_timeout",
    "mesos_seccomp_enabled",
    "mesos_seccomp_profile_name",
    "metronome_gpu_scheduling_behavior",
    "metronome_port",
    "no_proxy",
    "no_proxy_final",
    "num_masters",
    "oauth_auth_host",
    "oauth_auth_redirector",
    "oauth_available",
    "oauth_client_id",
    "oauth_enabled",
    "oauth_issuer_url",
    "os_type",
    "overlay_network_default_name",
    "package_ids",
    "platform",
    "process_timeout",
    "profile_symlink_source",
    "profile_symlink_target",
    "profile_symlink_target_dir",
    "provider",
    "public_agent_list",
    "resolvers",
    "resolvers_str",
    "rexray_config",
    "rexray_config_contents",
    "rexray_config_preset",
    "s3_bucket",
    "s3_prefix",
    "ssh_key_path",
    "ssh_parallelism",
    "ssh_port",
    "ssh_user",
    "superuser_service_account_public_key",
    "superuser_service_account_uid",
    "telemetry_enabled",
    "ui_banner",
    "ui_banner_background_color",
    "ui_banner_dismissible",
    "ui_banner_footer_content",
    "ui_banner_foreground_color",
    "ui_banner_header_content",
    "ui_banner_header_title",
    "ui_banner_image_path",
    "ui_branding",
    "ui_external_links",
    "ui_networking",
    "ui_organization",
    "ui_telemetry_metadata",
    "ui_tracking",
    "ui_update_enabled",
    "use_mesos_hooks",
    "use_proxy",
    "vtep_mac_oui",
    "vtep_subnet",
    "vtep_subnet6",
    "vxlan_vni",
    "zk_client_port",
];

/// True when the DC/OS installer knows `key`.
pub fn known(key: &str) -> bool {
    GENCONF_KEYS.binary_search(&key).is_ok()
}

/// The known key closest to `key` (edit distance, ties to the first in order).
pub fn closest(key: &str) -> &'static str {
    GENCONF_KEYS
        .iter()
        .min_by_key(|k| distance(key, k))
        .copied()
        .unwrap_or("")
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_holds_the_keys_the_lab_writes() {
        assert!(GENCONF_KEYS.windows(2).all(|w| w[0] < w[1]));
        for k in [
            "bootstrap_url",
            "cluster_name",
            "master_discovery",
            "exhibitor_storage_backend",
            "master_list",
            "agent_list",
            "public_agent_list",
            "resolvers",
            "enable_ipv6",
            "telemetry_enabled",
            "ui_tracking",
            "oauth_enabled",
            "check_time",
            "dns_search",
        ] {
            assert!(known(k), "{k}");
        }
    }

    #[test]
    fn a_misspelt_key_finds_its_real_name() {
        assert!(!known("telemetry_enable"));
        assert_eq!(closest("telemetry_enable"), "telemetry_enabled");
        assert_eq!(closest("dns_serach"), "dns_search");
        assert_eq!(closest("ui_traking"), "ui_tracking");
    }
}
