# The registry seam's PowerShell backend: reads the requested keys and values (args.queries) and returns
# them with their type codes. HKU\* is every S-1-5-21-* profile in ProfileList; a profile whose hive is not
# loaded (user not logged on) is answered as unreadable, never as "missing". Binary data as base64.
param($A)
$ErrorActionPreference = 'Stop'
$LM = [Microsoft.Win32.Registry]::LocalMachine
$HU = [Microsoft.Win32.Registry]::Users
function Open-Key([string]$path) {
    $parts = $path -split '\\', 2
    $root = switch ($parts[0].ToUpperInvariant()) {
        'HKLM' { $LM } 'HKEY_LOCAL_MACHINE' { $LM } 'HKU' { $HU } 'HKEY_USERS' { $HU }
        default { throw "unknown registry root $($parts[0])" }
    }
    if ($parts.Count -lt 2 -or $parts[1] -eq '') { return $root }
    return $root.OpenSubKey($parts[1], $false)
}
$users = @()
$plist = $LM.OpenSubKey('SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList', $false)
if ($null -ne $plist) {
    foreach ($sid in $plist.GetSubKeyNames()) {
        if (-not $sid.StartsWith('S-1-5-21-') -or $sid.ToLowerInvariant().EndsWith('.bak')) { continue }
        $k = $plist.OpenSubKey($sid, $false)
        $path = $null
        if ($null -ne $k) { $path = [string]$k.GetValue('ProfileImagePath', $null, 'DoNotExpandEnvironmentNames') }
        $users += [ordered]@{ sid = $sid; profile = $path; loaded = ($null -ne $HU.OpenSubKey($sid, $false)) }
    }
}
function Read-One($q, [int]$i, [string]$key, $user) {
    $a = [ordered]@{ query = $i; key = $key; user = $null; status = 'ok'; values = [ordered]@{}; subkeys = @() }
    if ($null -ne $user) { $a.user = $user.sid }
    try {
        $k = Open-Key $key
        if ($null -eq $k) {
            if ($null -ne $user -and -not $user.loaded) {
                $a.status = 'error'
                $a.error = [ordered]@{ kind = 'hive_unreadable'; message = 'user not logged on: the hive is not loaded' }
            } else { $a.status = 'missing' }
            return $a
        }
        $names = @($k.GetValueNames())
        if ($null -ne $q.values) { $names = @($names | Where-Object { @($q.values) -contains $(if ($_ -eq '') { '(default)' } else { $_ }) }) }
        foreach ($n in $names) {
            $kind = [int]$k.GetValueKind($n)
            $raw = $k.GetValue($n, $null, 'DoNotExpandEnvironmentNames')
            $shown = if ($n -eq '') { '(default)' } else { $n }
            $v = [ordered]@{ type = $kind; data = $null; enc = $null }
            switch ($kind) {
                4 { $v.data = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int32]$raw), 0) }
                11 { $v.data = [string][BitConverter]::ToUInt64([BitConverter]::GetBytes([int64]$raw), 0); $v.enc = 'decimal' }
                1 { $v.data = [string]$raw } 2 { $v.data = [string]$raw }
                7 { $v.data = @($raw) }
                default { if ($kind -lt 0) { $v.type = 0 }; $v.data = [Convert]::ToBase64String([byte[]]$raw); $v.enc = 'base64' }
            }
            $a.values[$shown] = $v
        }
        if ($q.subkeys) { $a.subkeys = @($k.GetSubKeyNames()) }
        $k.Close()
    } catch [System.Security.SecurityException] {
        $a.status = 'error'; $a.error = [ordered]@{ kind = 'hive_unreadable'; message = [string]$_.Exception.Message }
    } catch [System.UnauthorizedAccessException] {
        $a.status = 'error'; $a.error = [ordered]@{ kind = 'hive_unreadable'; message = [string]$_.Exception.Message }
    }
    return $a
}
$answers = @()
$i = 0
foreach ($q in @($A.queries)) {
    $parts = ([string]$q.key) -split '\\'
    if ($parts.Count -gt 1 -and @('HKU', 'HKEY_USERS') -contains $parts[0] -and $parts[1] -eq '*') {
        $rest = @()
        if ($parts.Count -gt 2) { $rest = $parts[2..($parts.Count - 1)] }
        foreach ($u in $users) {
            $answers += Read-One $q $i ((@('HKU', $u.sid) + $rest) -join '\') $u
        }
    } else {
        $answers += Read-One $q $i ([string]$q.key) $null
    }
    $i++
}
[ordered]@{ users = $users; answers = $answers }
