# The local password and lockout policy: secedit /export /areas SECURITYPOLICY into a temp file with a random
# name under $env:TEMP (deleted in finally), returned as the file's bytes in base64: the collector checks
# that it is UTF-16 LE as secedit writes it and parses [System Access] (collectors/windows/secedit.py).
# secedit's console text is localized prose: discarded; only its exit code is read.
param($A)
$ErrorActionPreference = 'Stop'
$tmp = Join-Path $env:TEMP ('mamoru-' + [guid]::NewGuid().ToString('N') + '.inf')
try {
    # 'Continue' around the native call: with 'Stop', Windows PowerShell 5.1 turns a stderr line into an error.
    $ErrorActionPreference = 'Continue'
    $null = & "$env:SystemRoot\System32\secedit.exe" /export /cfg $tmp /areas SECURITYPOLICY /quiet 2>&1
    $rc = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($rc -ne 0) { throw "secedit /export exited with code $rc" }
    $bytes = [IO.File]::ReadAllBytes($tmp)
    [ordered]@{ exit_code = $rc; data = [Convert]::ToBase64String($bytes) }
} finally {
    Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
}
