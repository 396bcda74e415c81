//! PT_STATUS / AMT_STATUS: one numbering shared by AMTHI replies and generic WS-MAN ReturnValues
//! (provisioning.md §1.1, transport.md §4.4).

use crate::code_enum::code_enum;

code_enum! {
    /// A firmware status; the names are the firmware's own spelling, without the `PT_STATUS_` /
    /// `AMT_STATUS_` prefix. Unknown numbers are data, never a panic.
    PtStatus, unknown = "a status this agent does not know" {
        Success = 0 => "SUCCESS", "the request succeeded";
        InternalError = 1 => "INTERNAL_ERROR", "the firmware hit an internal error";
        NotReady = 2 => "NOT_READY", "the ME has not finished initialising";
        InvalidPtMode = 3 => "INVALID_PT_MODE", "not allowed in the current AMT mode";
        InvalidMessageLength = 4 => "INVALID_MESSAGE_LENGTH", "the request length is wrong for this command";
        TableFingerprintNotAvailable = 5 => "TABLE_FINGERPRINT_NOT_AVAILABLE", "table fingerprint not available";
        IntegrityCheckFailed = 6 => "INTEGRITY_CHECK_FAILED", "integrity check failed";
        UnsupportedIsvsVersion = 7 => "UNSUPPORTED_ISVS_VERSION", "unsupported ISVS version";
        ApplicationNotRegistered = 8 => "APPLICATION_NOT_REGISTERED", "application not registered";
        InvalidRegistrationData = 9 => "INVALID_REGISTRATION_DATA", "invalid registration data";
        ApplicationDoesNotExist = 10 => "APPLICATION_DOES_NOT_EXIST", "application does not exist";
        NotEnoughStorage = 11 => "NOT_ENOUGH_STORAGE", "not enough storage";
        InvalidName = 12 => "INVALID_NAME", "invalid name";
        BlockDoesNotExist = 13 => "BLOCK_DOES_NOT_EXIST", "block does not exist";
        InvalidByteOffset = 14 => "INVALID_BYTE_OFFSET", "invalid byte offset";
        InvalidByteCount = 15 => "INVALID_BYTE_COUNT", "invalid byte count";
        NotPermitted = 16 => "NOT_PERMITTED", "the operation is not permitted in this state";
        NotOwner = 17 => "NOT_OWNER", "not the owner";
        BlockLockedByOther = 18 => "BLOCK_LOCKED_BY_OTHER", "block locked by another";
        BlockNotLocked = 19 => "BLOCK_NOT_LOCKED", "block not locked";
        InvalidGroupPermissions = 20 => "INVALID_GROUP_PERMISSIONS", "invalid group permissions";
        GroupDoesNotExist = 21 => "GROUP_DOES_NOT_EXIST", "group does not exist";
        InvalidMemberCount = 22 => "INVALID_MEMBER_COUNT", "invalid member count";
        MaxLimitReached = 23 => "MAX_LIMIT_REACHED", "a maximum was reached";
        InvalidAuthType = 24 => "INVALID_AUTH_TYPE", "invalid authentication type";
        AuthenticationFailed = 25 => "AUTHENTICATION_FAILED", "authentication failed";
        InvalidDhcpMode = 26 => "INVALID_DHCP_MODE", "invalid DHCP mode";
        InvalidIpAddress = 27 => "INVALID_IP_ADDRESS", "invalid IP address";
        InvalidDomainName = 28 => "INVALID_DOMAIN_NAME", "invalid domain name";
        UnsupportedVersion = 29 => "UNSUPPORTED_VERSION", "unsupported version";
        RequestUnexpected = 30 => "REQUEST_UNEXPECTED", "request unexpected in this state";
        InvalidTableType = 31 => "INVALID_TABLE_TYPE", "invalid table type";
        InvalidProvisioningState = 32 => "INVALID_PROVISIONING_STATE", "not allowed in the current provisioning state";
        UnsupportedObject = 33 => "UNSUPPORTED_OBJECT", "unsupported object";
        InvalidTime = 34 => "INVALID_TIME", "time earlier than the device's baseline";
        InvalidIndex = 35 => "INVALID_INDEX", "invalid index";
        InvalidParameter = 36 => "INVALID_PARAMETER", "a parameter is invalid";
        InvalidNetmask = 37 => "INVALID_NETMASK", "invalid netmask";
        FlashWriteLimitExceeded = 38 => "FLASH_WRITE_LIMIT_EXCEEDED", "flash wear-out protection: too many writes";
        InvalidImageLength = 39 => "INVALID_IMAGE_LENGTH", "invalid image length";
        InvalidImageSignature = 40 => "INVALID_IMAGE_SIGNATURE", "invalid image signature";
        ProposeAnotherVersion = 41 => "PROPOSE_ANOTHER_VERSION", "propose another version";
        InvalidPidFormat = 42 => "INVALID_PID_FORMAT", "invalid PID format";
        InvalidPpsFormat = 43 => "INVALID_PPS_FORMAT", "invalid PPS format";
        BistCommandBlocked = 44 => "BIST_COMMAND_BLOCKED", "BIST command blocked";
        ConnectionFailed = 45 => "CONNECTION_FAILED", "connection failed";
        ConnectionTooMany = 46 => "CONNECTION_TOO_MANY", "too many connections";
        RngGenerationInProgress = 47 => "RNG_GENERATION_IN_PROGRESS", "random number generation in progress";
        RngNotReady = 48 => "RNG_NOT_READY", "random number generator not ready";
        CertificateNotReady = 49 => "CERTIFICATE_NOT_READY", "AMT's self-generated certificate is not ready";
        DisabledByPolicy = 1024 => "DISABLED_BY_POLICY", "disabled by policy";
        NetworkIfErrorBase = 2048 => "NETWORK_IF_ERROR_BASE", "network interface error";
        UnsupportedOemNumber = 2049 => "UNSUPPORTED_OEM_NUMBER", "unsupported OEM number";
        UnsupportedBootOption = 2050 => "UNSUPPORTED_BOOT_OPTION", "unsupported boot option";
        InvalidCommand = 2051 => "INVALID_COMMAND", "invalid command";
        InvalidSpecialCommand = 2052 => "INVALID_SPECIAL_COMMAND", "invalid special command";
        InvalidHandle = 2053 => "INVALID_HANDLE", "invalid handle";
        InvalidPassword = 2054 => "INVALID_PASSWORD", "the password does not meet AMT's rules";
        InvalidRealm = 2055 => "INVALID_REALM", "invalid realm";
        StorageAclEntryInUse = 2056 => "STORAGE_ACL_ENTRY_IN_USE", "storage ACL entry in use";
        DataMissing = 2057 => "DATA_MISSING", "essential data is missing (for CommitChanges: the MEBx password)";
        Duplicate = 2058 => "DUPLICATE", "duplicate entry";
        EventlogFrozen = 2059 => "EVENTLOG_FROZEN", "event log frozen";
        PkiMissingKeys = 2060 => "PKI_MISSING_KEYS", "PKI keys missing";
        PkiGeneratingKeys = 2061 => "PKI_GENERATING_KEYS", "PKI keys being generated";
        InvalidKey = 2062 => "INVALID_KEY", "invalid key";
        InvalidCert = 2063 => "INVALID_CERT", "invalid certificate";
        CertKeyNotMatch = 2064 => "CERT_KEY_NOT_MATCH", "certificate and key do not match";
        MaxKerbDomainReached = 2065 => "MAX_KERB_DOMAIN_REACHED", "maximum Kerberos domains reached";
        Unsupported = 2066 => "UNSUPPORTED", "unsupported";
        InvalidPriority = 2067 => "INVALID_PRIORITY", "invalid priority";
        NotFound = 2068 => "NOT_FOUND", "not found";
        InvalidCredentials = 2069 => "INVALID_CREDENTIALS", "invalid credentials";
        InvalidPassphrase = 2070 => "INVALID_PASSPHRASE", "invalid passphrase";
        NoAssociation = 2072 => "NO_ASSOCIATION", "no association";
        AuditFail = 2075 => "AUDIT_FAIL", "audit failure";
        BlockingComponent = 2076 => "BLOCKING_COMPONENT", "an ME component is not ready";
        UserConsentRequired = 2081 => "USER_CONSENT_REQUIRED", "user consent required";
        OperationInProgress = 2082 => "OPERATION_IN_PROGRESS", "an operation is in progress; wait and retry";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes_round_trip_with_firmware_names() {
        assert_eq!(PtStatus::from_u32(0), PtStatus::Success);
        assert_eq!(PtStatus::from_u32(3).name(), "INVALID_PT_MODE");
        assert_eq!(PtStatus::from_u32(2057).to_string(), "DATA_MISSING (2057)");
        assert_eq!(PtStatus::from_u32(0x817), PtStatus::Unknown(0x817));
        assert_eq!(PtStatus::Unknown(0x817).to_string(), "UNKNOWN (2071)");
        for v in 0..3000u32 {
            assert_eq!(PtStatus::from_u32(v).code(), v);
        }
    }
}
