#!/usr/bin/env python3
"""Write the sample bank files of test/bankfiles/ (run from anywhere).

Hand-made files, no bank's data: a BgMax file (Bankgirot, ISO-8859-1, CR LF) and a Nets OCR
giro file (LF), each good, plus bad variants that differ from the good file in one place.
docs/bankfiles.md describes the records; every field below is placed by its 1-based position.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def luhn(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def ocr(base):
    """Swedish OCR with length digit and Luhn check digit (as subbilling.ocr_reference)."""
    with_len = base + str((len(base) + 2) % 10)
    return with_len + luhn(with_len)


def kid(base):
    """Norwegian KID, mod10 (as subbilling.kid_reference)."""
    return base + luhn(base)


def rec(*fields):
    """Concatenate (position, text) pairs into an 80-character record, blank-filled."""
    line = [' '] * 80
    for pos, text in fields:
        for i, ch in enumerate(text):
            line[pos - 1 + i] = ch
    s = ''.join(line)
    assert len(s) == 80, s
    return s


def z(n, width):
    return str(n).zfill(width)


# ---------------------------------------------------------------- BgMax

RECEIVER = '0009912346'          # receiver's bankgiro number, 10 digits
ACCOUNT = z('58410000010098', 35)


def bg_start(test='P'):
    return rec((1, '01'), (3, 'BGMAX'), (23, '01'), (25, '20250317061530123456'), (45, test))


def bg_open(currency='SEK'):
    return rec((1, '05'), (3, RECEIVER), (23, currency))


def bg_pay(tk, sender, ref, amount, refcode, channel, serial, image='0', right=False, dcode=''):
    ref_field = ref.rjust(25) if right else ref
    return rec((1, tk), (3, z(sender, 10)), (13, ref_field), (38, z(amount, 18)),
               (56, str(refcode)), (57, str(channel)), (58, z(serial, 12)), (70, image), (71, dcode))


def bg_deposit(date, serial, amount, count, currency='SEK', kind=' '):
    return rec((1, '15'), (3, ACCOUNT), (38, date), (46, z(serial, 5)), (51, z(amount, 18)),
               (69, currency), (72, z(count, 8)), (80, kind))


def bg_end(payments, deductions, extras, deposits):
    return rec((1, '70'), (3, z(payments, 8)), (11, z(deductions, 8)), (19, z(extras, 8)),
               (27, z(deposits, 8)))


REF = {n: ocr(str(n)) for n in (4711, 4712, 4713, 4714, 9999)}

bgmax_good = [
    bg_start(),
    bg_open(),
    bg_pay('20', 3783511, REF[4711], 125000, 2, 1, 1001, right=True),
    rec((1, '26'), (3, 'Kalles Plåt AB')),
    rec((1, '27'), (3, 'Storgatan 2'), (38, '12345')),
    rec((1, '28'), (3, 'Storåker')),
    rec((1, '29'), (3, '005560001234')),
    bg_pay('20', 0, REF[4712], 49900, 2, 1, 1002, right=True),
    bg_pay('20', 9701233, REF[9999], 30000, 2, 2, 1003, right=True),
    rec((1, '26'), (3, 'Olles Färg AB')),
    bg_deposit('20250314', 1, 125000 + 49900 + 30000, 3),
    bg_open(),
    bg_pay('20', 1234567, 'FAKTURA ' + REF[4713], 200000, 4, 3, 1004, image='1'),
    rec((1, '22'), (3, z(1234567, 10)), (13, REF[4714].rjust(25)), (38, z(0, 18)),
        (56, '2'), (57, '3'), (58, z(1004, 12)), (70, '1')),
    rec((1, '25'), (3, 'Betalning avser två fakturor')),
    rec((1, '26'), (3, 'Berits Garn'), (38, 'c/o Berit Ek')),
    bg_pay('20', 0, '', 15000, 1, 3, 1005, image='1'),
    rec((1, '25'), (3, 'Medlemsavgift 2025')),
    bg_deposit('20250317', 2, 200000 + 15000, 2),
    bg_end(5, 0, 1, 2),
]

bgmax_deduction = [
    bg_start(),
    bg_open(),
    bg_pay('20', 3783511, REF[4711], 100000, 2, 2, 2001, right=True),
    bg_pay('21', 3783511, REF[4712], 20000, 2, 2, 2002, right=True, dcode='0'),
    rec((1, '23'), (3, z(3783511, 10)), (13, REF[4713].rjust(25)), (38, z(5000, 18)),
        (56, '2'), (57, '2'), (58, z(2002, 12)), (70, '0')),
    bg_deposit('20250314', 7, 80000, 2, kind='K'),
    bg_end(1, 1, 1, 1),
]


def variant(lines, index, new):
    out = list(lines)
    if new is None:
        del out[index]
    else:
        out[index] = new
    return out


bad_bgmax = {
    # line 11: the first deposit counts 2 payments, the section has 3
    'bgmax_bad_count': variant(bgmax_good, 10, bg_deposit('20250314', 1, 204900, 2)),
    # line 19: the second deposit's amount is 0.01 short
    'bgmax_bad_sum': variant(bgmax_good, 18, bg_deposit('20250317', 2, 214999, 2)),
    # line 8: a letter O in the amount
    'bgmax_bad_record': variant(bgmax_good, 7, bg_pay('20', 0, REF[4712], 49900, 2, 1, 1002,
                                                       right=True).replace('0000000000049900', '00000000000499O0')),
    # line 9: the record was cut after 60 characters
    'bgmax_truncated_line': variant(bgmax_good, 8, bgmax_good[8][:60]),
    # no end record
    'bgmax_missing_end': variant(bgmax_good, 19, None),
    # line 20: the end record counts 6 payment records, the file has 5
    'bgmax_bad_end_count': variant(bgmax_good, 19, bg_end(6, 0, 1, 2)),
}


# ---------------------------------------------------------------- Nets OCR giro

AGREEMENT = '000123456'
ACCOUNT_NO = '12345678903'


def ny_start():
    return 'NY000010' + '00008080' + '0000123' + '00012345' + '0' * 49


def ny_asg_start(number):
    return 'NY090020' + AGREEMENT + z(number, 7) + ACCOUNT_NO + '0' * 45


def ny_item1(ttype, number, date, amount, kid_, sign='0', serial=1):
    s = ('NY09' + z(ttype, 2) + '30' + z(number, 7) + date + '01' + date[:2] + '1' + z(serial, 5)
         + sign + z(amount, 17) + kid_.rjust(25) + '000000')
    assert len(s) == 80
    return s


def ny_item2(ttype, number, form, archive, bank_date, debit):
    s = ('NY09' + z(ttype, 2) + '31' + z(number, 7) + z(form, 10) + z(archive, 9) + '0' * 7
         + bank_date + z(debit, 11) + '0' * 22)
    assert len(s) == 80
    return s


def ny_item3(ttype, number, text):
    s = 'NY09' + z(ttype, 2) + '32' + z(number, 7) + text.ljust(40) + '0' * 25
    assert len(s) == 80
    return s


def ny_asg_end(ntx, nrec, total, date, first, last):
    s = 'NY090088' + z(ntx, 8) + z(nrec, 8) + z(total, 17) + date + first + last + '0' * 21
    assert len(s) == 80
    return s


def ny_end(ntx, nrec, total, date):
    s = 'NY000089' + z(ntx, 8) + z(nrec, 8) + z(total, 17) + date + '0' * 33
    assert len(s) == 80
    return s


KID = {n: kid(str(n)) for n in (5001, 5002, 5003, 5999)}

nets_good = [
    ny_start(),
    ny_asg_start(1),
    ny_item1(10, 1, '140325', 125000, KID[5001], serial=11),
    ny_item2(10, 1, 9797596016, 97596016, '130325', 12345678901),
    ny_item1(13, 2, '140325', 49900, KID[5002], serial=12),
    ny_item2(13, 2, 0, 0, '000000', 0),
    ny_asg_end(2, 6, 174900, '140325', '140325', '140325'),
    ny_asg_start(2),
    ny_item1(10, 1, '170325', 100000, KID[5003], serial=21),
    ny_item2(10, 1, 9797596017, 97596017, '160325', 98765432109),
    ny_item1(21, 2, '170325', 5000, '', serial=22),
    ny_item2(21, 2, 0, 0, '170325', 0),
    ny_item3(21, 2, 'Gave til klubben'),
    ny_item1(19, 3, '180325', 30000, KID[5999], serial=23),
    ny_item2(19, 3, 0, 0, '180325', 0),
    ny_asg_end(3, 9, 135000, '180325', '170325', '180325'),
    ny_end(5, 17, 309900, '180325'),
]

nets_reversal = [
    ny_start(),
    ny_asg_start(3),
    ny_item1(10, 1, '200325', 100000, KID[5001], serial=31),
    ny_item2(10, 1, 0, 0, '190325', 12345678901),
    ny_item1(18, 2, '200325', 25000, KID[5002], sign='-', serial=32),
    ny_item2(18, 2, 0, 0, '000000', 0),
    ny_asg_end(2, 6, 75000, '200325', '200325', '200325'),
    ny_end(2, 8, 75000, '200325'),
]

bad_nets = {
    # line 7: the first assignment's end record counts 3 transactions, it has 2
    'nets_bad_count': variant(nets_good, 6, ny_asg_end(3, 6, 174900, '140325', '140325', '140325')),
    # line 17: the transmission's sum is 1.00 too high
    'nets_bad_sum': variant(nets_good, 16, ny_end(5, 17, 310000, '180325')),
    # line 6: amount item 2 of transaction 3 after amount item 1 of transaction 2
    'nets_bad_record': variant(nets_good, 5, ny_item2(13, 3, 0, 0, '000000', 0)),
    # line 10: the record was cut after 79 characters
    'nets_truncated_line': variant(nets_good, 9, nets_good[9][:79]),
    # no end record for the transmission
    'nets_missing_end': variant(nets_good, 16, None),
}


def write(name, lines, eol, encoding):
    path = os.path.join(HERE, name + '.txt')
    with open(path, 'wb') as fh:
        fh.write((eol.join(lines) + eol).encode(encoding))


write('bgmax_good', bgmax_good, '\r\n', 'iso-8859-1')
write('bgmax_deduction', bgmax_deduction, '\r\n', 'iso-8859-1')
for name, lines in bad_bgmax.items():
    write(name, lines, '\r\n', 'iso-8859-1')
write('nets_good', nets_good, '\n', 'ascii')
write('nets_reversal', nets_reversal, '\n', 'ascii')
for name, lines in bad_nets.items():
    write(name, lines, '\n', 'ascii')

if __name__ == '__main__':
    for n in sorted(REF):
        print('OCR', n, REF[n])
    for n in sorted(KID):
        print('KID', n, KID[n])
