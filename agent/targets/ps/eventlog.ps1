# The Security log's oldest record (LG-02): what the log really holds, beside what its settings promise.
# Get-WinEvent -Oldest reads from the start of the log; TimeCreated is written as ISO 8601 UTC so that no
# locale's date format reaches mamoru. No events, or access denied (reading the Security log needs an
# elevated session), stop here: the batch reports the part's error.
param($A)
$ErrorActionPreference = 'Stop'
$e = Get-WinEvent -LogName 'Security' -MaxEvents 1 -Oldest
[ordered]@{
    LogName = 'Security'
    RecordId = [long]$e.RecordId
    TimeCreated = $e.TimeCreated.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffffffZ')
}
