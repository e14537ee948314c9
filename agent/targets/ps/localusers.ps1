# Local accounts on a running PC, where the SAM hive is closed even to administrators.
# The list and the flags: CIM Win32_UserAccount (LocalAccount=True): Name, SID, Disabled, PasswordRequired,
# Lockout. The last logon, password age and expiry: ADSI WinNT (NetUserGetInfo), the same per-account SAM
# record the image's F value holds (Win32_NetworkLoginProfile was not used: it lists only accounts with a
# cached profile, and its LastLogon can come from a domain controller, not this PC's SAM). ADSI accounts are
# enumerated from the computer container and matched by SID: no ADSI path is built from an account name.
# The Guest account is told by RID 501 in the collector, never by name (it is "ゲスト" or renamed).
# Dates are ISO 8601 UTC in the invariant culture; ADSI errors are their HRESULTs, never localized text.
param($A)
$ErrorActionPreference = 'Stop'
function Com-Code($err) {
    $e = $err.Exception
    while ($null -ne $e -and -not ($e -is [Runtime.InteropServices.COMException])) { $e = $e.InnerException }
    if ($null -eq $e) { return 'error' }
    return ('0x{0:X8}' -f $e.ErrorCode)
}
function Iso($d) {
    if ($null -eq $d) { return $null }
    return ([datetime]$d).ToUniversalTime().ToString('o', [Globalization.CultureInfo]::InvariantCulture)
}
# 0x8000500D: "the directory property cannot be found in the cache": ADSI leaves out a property never set
# (LastLogin of an account that never logged on, AccountExpirationDate of one that never expires).
$NOT_SET = '0x8000500D'
function Prop($entry, [string]$name) {
    try { return @{ value = $entry.InvokeGet($name); error = $null } }
    catch {
        $code = Com-Code $_
        if ($code -eq $NOT_SET) { return @{ value = $null; error = $null } }
        return @{ value = $null; error = "$name $code" }
    }
}
$adsi = @{}
$adsiError = $null
try {
    $computer = [ADSI]"WinNT://$env:COMPUTERNAME,computer"
    [void]$computer.Children.SchemaFilter.Add('user')
    foreach ($u in $computer.Children) {
        $sid = (New-Object Security.Principal.SecurityIdentifier([byte[]]$u.InvokeGet('objectSid'), 0)).Value
        $last = Prop $u 'LastLogin'
        $age = Prop $u 'PasswordAge'
        $exp = Prop $u 'AccountExpirationDate'
        $errs = @(@($last.error, $age.error, $exp.error) | Where-Object { $null -ne $_ })
        $adsi[$sid] = [ordered]@{ LastLogin = (Iso $last.value); PasswordAge = $age.value
                                  AccountExpirationDate = (Iso $exp.value); adsi_error = ($errs -join '; ') }
    }
} catch {
    $adsiError = "WinNT://$env:COMPUTERNAME $(Com-Code $_)"
}
$users = @(foreach ($a in @(Get-CimInstance -ClassName Win32_UserAccount -Filter 'LocalAccount=True')) {
    $row = [ordered]@{ Name = [string]$a.Name; SID = [string]$a.SID; Disabled = $a.Disabled
                       PasswordRequired = $a.PasswordRequired; Lockout = $a.Lockout
                       LastLogin = $null; PasswordAge = $null; AccountExpirationDate = $null; adsi_error = $null }
    $d = $adsi[[string]$a.SID]
    if ($null -ne $adsiError) { $row.adsi_error = $adsiError }
    elseif ($null -eq $d) { $row.adsi_error = 'not found through ADSI' }
    else {
        $row.LastLogin = $d.LastLogin; $row.PasswordAge = $d.PasswordAge
        $row.AccountExpirationDate = $d.AccountExpirationDate
        if ($d.adsi_error) { $row.adsi_error = $d.adsi_error }
    }
    $row
})
[ordered]@{ users = $users }
