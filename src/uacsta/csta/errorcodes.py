"""CSTAErrorCode categories and values (ECMA-269 §9.3, ECMA-323 §9.3 "CSTA error codes").

Owns the error vocabulary of negative responses. Values pass unknown strings through
(snom answers ``invalidDeviceID``, which is not a standard value) so an error relayed from a
phone reaches the client unchanged. The message class itself is
:class:`uacsta.csta.messages.CSTAErrorCode`.
"""

from __future__ import annotations

from uacsta.csta.types import PassThroughEnum

__all__ = [
    "CATEGORY_VALUES",
    "ErrorCategory",
    "OperationError",
    "PerformanceManagementError",
    "PrivateDataError",
    "SecurityError",
    "StateIncompatibilityError",
    "SubscribedResourceAvailabilityError",
    "SystemResourceAvailabilityError",
    "UnspecifiedError",
    "coerce_error_value",
]


class ErrorCategory(PassThroughEnum):
    OPERATION = "operation"
    SECURITY = "security"
    STATE_INCOMPATIBILITY = "stateIncompatibility"
    SYSTEM_RESOURCE_AVAILABILITY = "systemResourceAvailability"
    SUBSCRIBED_RESOURCE_AVAILABILITY = "subscribedResourceAvailability"
    PERFORMANCE_MANAGEMENT = "performanceManagement"
    PRIVATE_DATA = "privateData"
    UNSPECIFIED = "unspecified"


class OperationError(PassThroughEnum):
    GENERIC = "generic"
    REQUEST_INCOMPATIBLE_WITH_OBJECT = "requestIncompatibleWithObject"
    VALUE_OUT_OF_RANGE = "valueOutOfRange"
    OBJECT_NOT_KNOWN = "objectNotKnown"
    INVALID_CALLING_DEVICE = "invalidCallingDevice"
    INVALID_CALLED_DEVICE = "invalidCalledDevice"
    INVALID_FORWARDING_DESTINATION = "invalidForwardingDestination"
    PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE = "privilegeViolationOnSpecifiedDevice"
    PRIVILEGE_VIOLATION_ON_CALLED_DEVICE = "privilegeViolationOnCalledDevice"
    PRIVILEGE_VIOLATION_ON_CALLING_DEVICE = "privilegeViolationOnCallingDevice"
    INVALID_CSTA_CALL_IDENTIFIER = "invalidCstaCallIdentifier"
    INVALID_CSTA_DEVICE_IDENTIFIER = "invalidCstaDeviceIdentifier"
    INVALID_CSTA_CONNECTION_IDENTIFIER = "invalidCstaConnectionIdentifier"
    INVALID_DESTINATION = "invalidDestination"
    INVALID_FEATURE = "invalidFeature"
    INVALID_ALLOCATION_STATE = "invalidAllocationState"
    INVALID_CROSS_REF_ID = "invalidCrossRefId"
    INVALID_OBJECT_TYPE = "invalidObjectType"
    SECURITY_VIOLATION = "securityViolation"
    INVALID_CSTA_APPLICATION_CORRELATOR = "invalidCstaApplicationCorrelator"
    INVALID_ACCOUNT_CODE = "invalidAccountCode"
    INVALID_AUTHORISATION_CODE = "invalidAuthorisationCode"
    REQUEST_INCOMPATIBLE_WITH_CALLING_DEVICE = "requestIncompatibleWithCallingDevice"
    REQUEST_INCOMPATIBLE_WITH_CALLED_DEVICE = "requestIncompatibleWithCalledDevice"
    INVALID_MESSAGE_IDENTIFIER = "invalidMessageIdentifier"
    MESSAGE_IDENTIFIER_REQUIRED = "messageIdentifierRequired"
    MEDIA_INCOMPATIBLE = "mediaIncompatible"
    # Not in the standard, but phones (snom) send it.
    INVALID_DEVICE_ID = "invalidDeviceID"


class SecurityError(PassThroughEnum):
    GENERIC = "generic"
    SEQUENCE_NUMBER_VIOLATED = "sequenceNumberViolated"
    TIME_STAMP_VIOLATED = "timeStampViolated"
    PAC_VIOLATED = "pACViolated"
    SEAL_VIOLATED = "sealViolated"


class StateIncompatibilityError(PassThroughEnum):
    GENERIC = "generic"
    INVALID_OBJECT_STATE = "invalidObjectState"
    INVALID_CONNECTION_ID = "invalidConnectionID"
    NO_ACTIVE_CALL = "noActiveCall"
    NO_HELD_CALL = "noHeldCall"
    NO_CALL_TO_CLEAR = "noCallToClear"
    NO_CONNECTION_TO_CLEAR = "noConnectionToClear"
    NO_CALL_TO_ANSWER = "noCallToAnswer"
    NO_CALL_TO_COMPLETE = "noCallToComplete"
    NOT_ABLE_TO_PLAY = "notAbleToPlay"
    NOT_ABLE_TO_RESUME = "notAbleToResume"
    END_OF_MESSAGE = "endOfMessage"
    BEGINNING_OF_MESSAGE = "beginningOfMessage"
    MESSAGE_SUSPENDED = "messageSuspended"
    INCORRECT_MESSAGE_STATE = "incorrectMessageState"


class SystemResourceAvailabilityError(PassThroughEnum):
    GENERIC = "generic"
    SERVICE_BUSY = "serviceBusy"
    RESOURCE_BUSY = "resourceBusy"
    RESOURCE_OUT_OF_SERVICE = "resourceOutOfService"
    NETWORK_BUSY = "networkBusy"
    NETWORK_OUT_OF_SERVICE = "networkOutOfService"
    OVERALL_MONITOR_LIMIT_EXCEEDED = "overallMonitorLimitExceeded"
    CONFERENCE_MEMBER_LIMIT_EXCEEDED = "conferenceMemberLimitExceeded"
    MAX_OFF_HOOK_TIME = "maxOffHookTime"
    OUT_OF_SERVICE = "outOfService"
    TIMEOUT = "timeout"


class SubscribedResourceAvailabilityError(PassThroughEnum):
    GENERIC = "generic"
    OBJECT_MONITOR_LIMIT_EXCEEDED = "objectMonitorLimitExceeded"
    TRUNK_LIMIT_EXCEEDED = "trunkLimitExceeded"
    OUTSTANDING_REQUEST_LIMIT_EXCEEDED = "outstandingRequestLimitExceeded"


class PerformanceManagementError(PassThroughEnum):
    GENERIC = "generic"
    PERFORMANCE_LIMIT_EXCEEDED = "performanceLimitExceeded"


class PrivateDataError(PassThroughEnum):
    GENERIC = "generic"
    PRIVATE_DATA_INFORMATION_ERROR = "privateDataInformationError"


class UnspecifiedError(PassThroughEnum):
    UNSPECIFIED = "unspecified"


CATEGORY_VALUES: dict[str, type[PassThroughEnum]] = {
    ErrorCategory.OPERATION: OperationError,
    ErrorCategory.SECURITY: SecurityError,
    ErrorCategory.STATE_INCOMPATIBILITY: StateIncompatibilityError,
    ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY: SystemResourceAvailabilityError,
    ErrorCategory.SUBSCRIBED_RESOURCE_AVAILABILITY: SubscribedResourceAvailabilityError,
    ErrorCategory.PERFORMANCE_MANAGEMENT: PerformanceManagementError,
    ErrorCategory.PRIVATE_DATA: PrivateDataError,
    ErrorCategory.UNSPECIFIED: UnspecifiedError,
}

_VALUE_MAPS: dict[str, dict[str, PassThroughEnum]] = {
    category: {member.value: member for member in values}
    for category, values in CATEGORY_VALUES.items()
}


def coerce_error_value(category: str, value: str) -> PassThroughEnum | str:
    """The enum member of ``value`` within ``category`` if known, else ``value`` unchanged."""
    values = _VALUE_MAPS.get(category)
    if values is None:
        return value
    return values.get(value, value)
