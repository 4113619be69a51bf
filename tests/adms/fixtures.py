"""Byte fixtures from public captures of real push terminals (each with its source).

* ``FIELD_*``: a public field log of a ZAM180-NF50VA (firmware Ver3.4.10, an eSSL/ZKTeco
  face unit) pointed at a test server instead of eTimeTrackLite: its raw ATTLOG request
  (``POST /iclock/cdata.aspx?SN=NCD8252500406&table=ATTLOG&Stamp=9999``, body
  ``9001<TAB>2026-07-28 22:40:21<TAB>1<TAB>15<TAB>0...``, local time of an India site,
  UTC+5:30), its poll with ``INFO=`` and its ``devicecmd`` answer.
* ``V5L_*``: s0x90/zkteco-adms ``datasheet/ADMS.md``, "Real Device Protocol Findings"
  (SpeedFace-V5L-RFID[TI], ZAM180-NF-Ver1.1.17, ``iClock Proxy/1.09``): batched and
  multi-line command confirmations.
* ``KV_LINE``: the ``key=value`` ATTLOG dialect of the same datasheet's first part.
* ``HANDSHAKE_QUERY``: a device's handshake URL quoted in a public PHP ADMS server
  (``/iclock/cdata?PushOptionsFlag=2&SN=CEZU202360241&language=69&options=all&pushver=2.4.0``).
* ``BLANK_FIELDS_LINE``: a 10-field line with empty work code and reserved fields, quoted as
  a device example in a public Next.js ADMS endpoint (``2\t2022-07-12 16:00:20\t1\t15\t\t0...``).
"""

FIELD_ATTLOG_REQUEST = (
    b"POST /iclock/cdata.aspx?SN=NCD8252500406&table=ATTLOG&Stamp=9999 HTTP/1.1\r\n"
    b"Host: 192.168.0.10:8080\r\n"
    b"User-Agent: iClock Proxy/1.09\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 42\r\n"
    b"\r\n"
    b"9001\t2026-07-28 22:40:21\t1\t15\t0\t0\t0\t0\t0\t0\n"
)
FIELD_ATTLOG_BODY = FIELD_ATTLOG_REQUEST.split(b"\r\n\r\n", 1)[1]
FIELD_POLL_PATH = (
    "/iclock/getrequest.aspx?SN=NCD8252500406"
    "&INFO=ZAM180-NF50VA-Ver3.4.10,1,0,16,192.168.0.25,10,39,12,1,01110,0,0,0"
)
FIELD_DEVICECMD = b"ID=1&Return=0&CMD=DATA"

V5L_BATCHED = b"ID=1&Return=0&CMD=DATA\nID=2&Return=0&CMD=DATA\nID=3&Return=0&CMD=CHECK\n"
V5L_MULTILINE = b"ID=32\nReturn=0\nCMD=Shell\nContent=Tue Mar 24 16:12:26 GMT 2026\n"
V5L_COMMANDS = b"C:1:INFO\nC:2:CHECK\n"

KV_LINE = b"PIN=1001    DateTime=2025-09-02 14:32:11    Verified=1    Status=0\n"
HANDSHAKE_QUERY = "PushOptionsFlag=2&SN=CEZU202360241&language=69&options=all&pushver=2.4.0"
BLANK_FIELDS_LINE = b"2\t2022-07-12 16:00:20\t1\t15\t\t0\t0\t\t\t43\n"
