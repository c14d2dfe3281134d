#!/usr/bin/env python3
"""Write the Autogiro sample files of test/bankfiles (our own data, no bank's):
autogiro_payments.txt, a payment specification (BET. SPEC & STOPP TK) answering five claims
(two approved, one each rejected for insufficient funds, no mandate, renewed attempt), and
autogiro_mandates.txt, a mandate advice (AG-MEDAVI: two new mandates, one cancelled), and
autogiro_rejections.txt, a report of rejected payment orders (AVVISADE BET UPPDR: two claims
refused, no mandate (01) and account closed (02), and one outgoing payment, passed date (13)).
80-character records, CR LF.  Run from the top of the tree."""

def rec(s):
    assert len(s) <= 80, (len(s), s)
    return s.ljust(80)

def claim(code, date, payer, amount, bg, ref, status):
    s = code + date + '0' + '   ' + ' ' + payer.rjust(16, '0') + '%012d' % amount + bg.rjust(10, '0') + ref.ljust(16)
    return rec(s.ljust(79) + status)

def mandate(payer, account, idn, info, status, date):
    return rec('73' + '0009912346' + payer.rjust(16, '0') + account.rjust(16, '0') + idn.rjust(12, '0')
               + '00000' + info + status + date)

p = [rec('01AUTOGIRO' + ' ' * 14 + '20250328061500000000' + 'BET. SPEC & STOPP TK' + '123456' + '0009912346')]
p.append(rec('15' + '0' * 35 + '20250328' + '00017' + '%018d' % (125000 + 49900) + '   ' + '%08d' % 2))
p.append(claim('82', '20250328', '1001', 125000, '9912346', '2025-000011', '0'))
p.append(claim('82', '20250328', '1002', 30000, '9912346', '2025-000012', '1'))
p.append(claim('82', '20250328', '1003', 49900, '9912346', '2025-000013', '0'))
p.append(claim('82', '20250328', '1004', 15000, '9912346', '2025-000014', '2'))
p.append(claim('82', '20250328', '1005', 20000, '9912346', '2025-000015', '9'))
p.append(rec('09' + '20250328' + '9900' + '%06d' % 1 + '%012d' % 2 + '%06d' % 0 + '%012d' % 0 + '%06d' % 0 + '%012d' % 0))
open('test/bankfiles/autogiro_payments.txt', 'w', newline='').write('\r\n'.join(p) + '\r\n')

m = [rec('01AUTOGIRO' + ' ' * 14 + '20250320' + ' ' * 12 + 'AG-MEDAVI' + ' ' * 11 + '123456' + '0009912346')]
m.append(mandate('1001', '3300001234567', '197001011234', '04', '32', '20250320'))
m.append(mandate('1002', '8327912345678', '198502023456', '04', '32', '20250320'))
m.append(mandate('1004', '3300007654321', '196003034567', '03', '02', '20250320'))
m.append(rec('09' + '20250320' + '9900' + '%07d' % 3))
open('test/bankfiles/autogiro_mandates.txt', 'w', newline='').write('\r\n'.join(m) + '\r\n')

def rejected(code, date, payer, amount, ref, comment):
    return rec(code + date + '0' + '   ' + payer.rjust(16, '0') + '%012d' % amount + ref.ljust(16) + comment)

r = [rec('01AUTOGIRO' + ' ' * 14 + '20250326' + ' ' * 12 + 'AVVISADE BET UPPDR  ' + '123456' + '0009912346')]
r.append(rejected('82', '20250328', '1002', 30000, '2025-000012', '01'))
r.append(rejected('82', '20250328', '1004', 15000, '2025-000014', '02'))
r.append(rejected('32', '20250320', '1001', 5000, 'ATERBET', '13'))
r.append(rec('09' + '20250326' + '9900' + '%06d' % 1 + '%012d' % 5000 + '%06d' % 2 + '%012d' % 45000))
open('test/bankfiles/autogiro_rejections.txt', 'w', newline='').write('\r\n'.join(r) + '\r\n')
