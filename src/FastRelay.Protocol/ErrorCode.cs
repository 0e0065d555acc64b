namespace FastRelay.Protocol;

/// <summary>Error codes carried by ERROR frames (field 12). HTTP-like numbers so they read at a glance.</summary>
public enum ErrorCode : ushort
{
    None = 0,
    /// <summary>The frame is not a valid envelope, or a field has the wrong type.</summary>
    BadFrame = 400,
    /// <summary>HELLO is missing, the token is invalid, expired or wrongly signed.</summary>
    Unauthorized = 401,
    /// <summary>The token does not allow this topic for this operation.</summary>
    Forbidden = 403,
    /// <summary>Not subscribed, unknown subscription.</summary>
    NotFound = 404,
    /// <summary>KV compare-and-set or if-absent failed: the key's current version is in seq.</summary>
    Conflict = 409,
    /// <summary>The frame type is not accepted from a client, or not in this state.</summary>
    UnsupportedType = 405,
    /// <summary>A message, topic or field is larger than the configured limit.</summary>
    TooLarge = 413,
    /// <summary>A limit was reached (subscriptions per connection, ...).</summary>
    LimitExceeded = 429,
    /// <summary>The server failed internally; the request may be retried.</summary>
    Internal = 500,
    /// <summary>The server is draining or overloaded; retry after retry_after_ms.</summary>
    Unavailable = 503,
}
