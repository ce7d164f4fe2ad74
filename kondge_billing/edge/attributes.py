"""RADIUS attribute names: the only module that spells them.

Cisco's h323 attributes carry their own name in the value
("h323-credit-time=360"); Quintum's are the same numbers under vendor 6618,
named with a "Quintum-" prefix (and h323-currency is h323-currency-type).
"""

USER_NAME = "User-Name"
USER_PASSWORD = "User-Password"
CALLING_STATION_ID = "Calling-Station-Id"
CALLED_STATION_ID = "Called-Station-Id"
SERVICE_TYPE = "Service-Type"
SESSION_TIMEOUT = "Session-Timeout"
REPLY_MESSAGE = "Reply-Message"
AUTH_TYPE = "Auth-Type"
ACCT_STATUS_TYPE = "Acct-Status-Type"
ACCT_SESSION_ID = "Acct-Session-Id"
ACCT_UNIQUE_SESSION_ID = "Acct-Unique-Session-Id"
ACCT_SESSION_TIME = "Acct-Session-Time"
ACCT_DELAY_TIME = "Acct-Delay-Time"
# When FreeRADIUS first received a record (present in records read back
# from the accounting spool).
TIMESTAMP = "Timestamp"
CISCO_AVPAIR = "Cisco-AVPair"
QUINTUM_AVPAIR = "Quintum-AVPair"

# A flag the server puts on a record it stores (never sent on the wire).
FLAG = "Kondge-Flag"
# Set by policy.d/kondge from the packet's source: the hook finds the gateway by it.
GATEWAY_ADDRESS = "Kondge-Gateway-Address"
# When this FreeRADIUS process received the packet (sites-available/kondge).
RECEIVED_SECONDS = "Kondge-Received-Seconds"
RECEIVED_MICROSECONDS = "Kondge-Received-Microseconds"

# Service-Type values that name the stage outright (Planet, Quintum).
SERVICE_AUTHENTICATE_ONLY = "Authenticate-Only"
SERVICE_OUTBOUND = "Outbound-User"

# h323 names (the value's own "name=" prefix is the same for both vendors).
CONF_ID = "h323-conf-id"
SETUP_TIME = "h323-setup-time"
CONNECT_TIME = "h323-connect-time"
DISCONNECT_TIME = "h323-disconnect-time"
DISCONNECT_CAUSE = "h323-disconnect-cause"
CALL_ORIGIN = "h323-call-origin"
CALL_TYPE = "h323-call-type"
GW_ID = "h323-gw-id"
CREDIT_AMOUNT = "h323-credit-amount"
CREDIT_TIME = "h323-credit-time"
RETURN_CODE = "h323-return-code"
CURRENCY = "h323-currency"
PREFERRED_LANG = "h323-preferred-lang"
BILLING_MODEL = "h323-billing-model"
PROMPT_ID = "h323-prompt-id"
IVR_OUT = "h323-ivr-out"

H323_REQUEST_NAMES = (CONF_ID, SETUP_TIME, CONNECT_TIME, DISCONNECT_TIME,
                      DISCONNECT_CAUSE, CALL_ORIGIN, CALL_TYPE, GW_ID)


def vendor_name(dialect: str, h323_name: str) -> str:
    """The dictionary name of an h323 attribute in a dialect."""
    if dialect == "quintum":
        if h323_name == CURRENCY:
            return "Quintum-h323-currency-type"
        return "Quintum-" + h323_name
    return h323_name


def h323_pair(dialect: str, h323_name: str, value) -> tuple[str, str]:
    """One reply pair, value led by its own name as the gateways expect."""
    wire_name = "h323-currency-type" if (dialect == "quintum" and h323_name == CURRENCY) else h323_name
    return (vendor_name(dialect, h323_name), f"{wire_name}={value}")
