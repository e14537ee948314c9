# The system audit policy: auditpol /backup into a temp CSV with a random name under $env:TEMP (deleted in
# finally), returned as the file's bytes in base64; the collector reads it by Subcategory GUID and the numeric
# Setting Value (collectors/windows/audit.py), never by the translated texts. Needs an elevated session.
param($A)
$ErrorActionPreference = 'Stop'
$tmp = Join-Path $env:TEMP ('mamoru-' + [guid]::NewGuid().ToString('N') + '.csv')
try {
    # 'Continue' around the native call: with 'Stop', Windows PowerShell 5.1 turns a stderr line into an error.
    $ErrorActionPreference = 'Continue'
    $null = & "$env:SystemRoot\System32\auditpol.exe" /backup "/file:$tmp" 2>&1
    $rc = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($rc -ne 0) { throw "auditpol /backup exited with code $rc" }
    $bytes = [IO.File]::ReadAllBytes($tmp)
    [ordered]@{ exit_code = $rc; data = [Convert]::ToBase64String($bytes) }
} finally {
    Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
}
